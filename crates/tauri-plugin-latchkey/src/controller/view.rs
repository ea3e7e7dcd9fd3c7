//! The controller's transitions: what each event does to the view and the state beside it.
//! Plain functions on [`Inner`], no Tauri and no core calls, so each is tested on its own; the
//! effects (timers, the core, the user file) are the callers' business.

use std::time::Duration;

use chrono::{DateTime, Utc};
use latchkey_core::{Error, ErrorKind};
use url::Url;

use super::Inner;
use crate::models::{
    ErrorView, IdentityView, Moment, Notice, NoticeKind, Phase, ProviderView, RetryAction,
    SetupView, WaitingView, app_message, kind_name, title,
};

impl Inner {
    /// Signed out, for whatever reason: the sign-in, the timers and the picture go, and a
    /// "will retry" notice with them (there is nothing left to retry).
    pub(super) fn signed_out(&mut self) {
        self.view.phase = Phase::SignedOut;
        self.view.identity = None;
        self.view.waiting = None;
        self.sign_in_url = None;
        if self.notice_is(NoticeKind::RefreshRetry) {
            self.view.notice = None;
        }
        self.refresh_timer.stop();
        self.timeout_timer.stop();
        self.loopback_task.stop();
        self.backoff.reset();
        self.picture_claim = None;
        self.picture = None;
    }

    /// Signed out because of `e` (the provider ended the session, or the sign-in failed).
    pub(super) fn signed_out_by(&mut self, e: &Error) {
        self.signed_out();
        self.view.error = Some(ErrorView::from_error(e, Some(RetryAction::SignIn)));
    }

    fn notice_is(&self, kind: NoticeKind) -> bool {
        self.view.notice.as_ref().is_some_and(|n| n.kind == kind)
    }

    /// The identity to show, with the fetched picture when it is the one its claims name.
    pub(super) fn show_identity(&mut self, mut view: IdentityView, claim: Option<String>) {
        if view.picture.is_none()
            && let (Some(claim), Some((fetched, data))) = (&claim, &self.picture)
            && claim == fetched
        {
            view.picture = Some(data.clone());
        }
        self.picture_claim = claim;
        self.view.identity = Some(view);
    }

    /// Whether the picture named by the claims still has to be fetched (and mark it as under way).
    pub(super) fn wants_picture(&mut self) -> bool {
        let wanted = self
            .view
            .identity
            .as_ref()
            .is_some_and(|v| v.picture.is_none())
            && self.picture_claim.is_some()
            && self.picture_fetch.is_none();
        if wanted {
            self.picture_fetch = self.picture_claim.clone();
        }
        wanted
    }

    /// Signed in (or refreshed): the sign-in and its timeout are over, and so is whatever the
    /// last refresh failure said. Returns whether the picture has to be fetched.
    pub(super) fn on_signed_in(&mut self, view: IdentityView, claim: Option<String>) -> bool {
        self.view.phase = Phase::SignedIn;
        self.show_identity(view, claim);
        let fetch = self.wants_picture();
        self.view.waiting = None;
        self.sign_in_url = None;
        self.backoff.reset();
        self.timeout_timer.stop();
        if self.notice_is(NoticeKind::RefreshRetry) {
            self.view.notice = None;
        }
        if self
            .view
            .error
            .as_ref()
            .is_some_and(|e| e.retry == Some(RetryAction::Refresh))
        {
            self.view.error = None;
        }
        fetch
    }

    /// The picture for `claim` arrived, as a `data:` URL; shown if the claim is still current.
    pub(super) fn on_picture(&mut self, claim: String, data: String) {
        self.picture_fetch = None;
        if self.picture_claim.as_ref() == Some(&claim)
            && let Some(view) = self.view.identity.as_mut()
        {
            view.picture = Some(data.clone());
        }
        self.picture = Some((claim, data));
    }

    /// A refresh (or the start-up `status()`) failed. Only a session the provider ended signs
    /// out; anything else keeps the user signed in (on the stored identity, when there is one)
    /// and, when it may pass, retries: the wait before the retry is returned.
    pub(super) fn on_refresh_failed(
        &mut self,
        e: &Error,
        stored: Option<(IdentityView, Option<String>)>,
        product: &str,
    ) -> Option<Duration> {
        if matches!(e.kind(), ErrorKind::SessionExpired | ErrorKind::NotSignedIn) {
            self.signed_out_by(e);
            return None;
        }
        self.view.phase = Phase::SignedIn;
        if let Some((view, claim)) = stored {
            self.show_identity(view, claim);
        }
        if !e.is_transient() {
            self.view.error = Some(ErrorView::from_error(e, Some(RetryAction::Refresh)));
            return None;
        }
        let wait = self.backoff.next();
        let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        self.view.notice = Some(Notice {
            kind: NoticeKind::RefreshRetry,
            message: format!(
                "Couldn't refresh the session. You are still signed in; {product} will try again by itself."
            ),
            detail: Some(app_message(e)),
            retry_at: Some(Moment::new(at)),
        });
        Some(wait)
    }

    /// The configuration could not be read at all: the form cannot be shown either.
    pub(super) fn on_unreadable_config(&mut self, e: &Error) {
        self.latchkey = None;
        self.signed_out();
        self.view.phase = Phase::Setup;
        self.view.setup = None;
        self.view.error = Some(ErrorView::from_error(e, Some(RetryAction::Startup)));
    }

    /// Not set up (or set up wrongly): the first-run form, with what is wrong.
    pub(super) fn on_needs_setup(&mut self, setup: SetupView, error: Option<&Error>) {
        self.latchkey = None;
        self.signed_out();
        self.view.phase = Phase::Setup;
        self.view.provider = None;
        self.view.setup = Some(setup);
        self.view.error = error.map(|e| ErrorView::from_error(e, None));
    }

    /// Set up for `issuer`: the form goes; the session is read next.
    pub(super) fn on_set_up(&mut self, issuer: &str) {
        self.view.provider = Some(ProviderView::from_issuer(issuer));
        self.view.setup = None;
    }

    /// `begin` failed before any browser opened.
    pub(super) fn on_begin_failed(&mut self, e: &Error) {
        self.beginning = false;
        self.view.notice = None;
        self.view.error = Some(ErrorView::from_error(e, Some(RetryAction::SignIn)));
    }

    /// A sign-in through the app's link has begun; returns its attempt number.
    pub(super) fn on_sign_in_begun(
        &mut self,
        url: &Url,
        expires_at: DateTime<Utc>,
        can_use_loopback: bool,
    ) -> u64 {
        self.beginning = false;
        self.attempt += 1;
        self.view.phase = Phase::Waiting;
        let mut waiting = WaitingView::new(url, expires_at);
        waiting.can_use_loopback = can_use_loopback;
        self.view.waiting = Some(waiting);
        self.view.error = None;
        self.view.notice = None;
        self.sign_in_url = Some(url.clone());
        self.attempt
    }

    /// The loopback listener is up and the browser was asked to open; `false` when that sign-in
    /// is no longer the current one.
    pub(super) fn on_loopback_opened(
        &mut self,
        attempt: u64,
        url: &Url,
        expires_at: DateTime<Utc>,
        problem: Option<String>,
    ) -> bool {
        self.beginning = false;
        if self.attempt != attempt {
            return false;
        }
        self.view.phase = Phase::Waiting;
        let mut waiting = WaitingView::new(url, expires_at);
        waiting.browser_opened = problem.is_none();
        waiting.browser_problem = problem;
        self.view.waiting = Some(waiting);
        self.sign_in_url = Some(url.clone());
        true
    }

    /// "Open again" got `url` for the sign-in in progress (a pushed request pushed anew, RFC
    /// 9126 §2.2): it is the page to open and to copy from now on.
    pub(super) fn on_reopened(&mut self, url: &Url) {
        if self.view.phase != Phase::Waiting {
            return;
        }
        self.sign_in_url = Some(url.clone());
        if let Some(w) = self.view.waiting.as_mut() {
            w.sign_in_url = url.to_string();
        }
    }

    /// The browser was asked to open the sign-in page: `Err` says why it didn't.
    pub(super) fn on_browser_opened(&mut self, opened: Result<(), String>) {
        if let Some(w) = self.view.waiting.as_mut() {
            match opened {
                Ok(()) => {
                    w.browser_opened = true;
                    w.browser_problem = None;
                }
                Err(problem) => w.browser_problem = Some(problem),
            }
        }
    }

    /// Sign-in `attempt` ran out of time after `within` ("2 minutes"). Returns whether it was
    /// still the one waiting (the caller then cancels it in the core).
    pub(super) fn on_timed_out(&mut self, attempt: u64, within: &str) -> bool {
        if self.attempt != attempt || self.view.phase != Phase::Waiting {
            return false;
        }
        self.timeout_timer.done();
        self.signed_out();
        self.view.error = Some(ErrorView {
            kind: kind_name(ErrorKind::TimedOut),
            title: title(ErrorKind::TimedOut).into(),
            message: format!(
                "The sign-in was not finished within {within}, so it was stopped. Start again when you're ready."
            ),
            description: None,
            retry: Some(RetryAction::SignIn),
        });
        true
    }

    /// The user cancelled the sign-in; a late redirect for it will be refused.
    pub(super) fn on_cancelled(&mut self) {
        if self.view.phase != Phase::Waiting {
            return;
        }
        self.attempt += 1;
        self.signed_out();
        self.view.error = None;
        self.view.notice = Some(Notice::info(
            "Sign-in cancelled. If the browser finishes that sign-in anyway, it will be ignored.",
        ));
    }

    /// A redirect arrived while nothing is set up to accept it.
    pub(super) fn on_link_before_setup(&mut self, product: &str) {
        self.view.error = Some(ErrorView {
            kind: kind_name(ErrorKind::ForeignCallback),
            title: title(ErrorKind::ForeignCallback).into(),
            message: format!("{product} is not set up yet, so the sign-in link was ignored."),
            description: None,
            retry: None,
        });
    }

    /// A redirect is being redeemed (`true`), or no longer is.
    pub(super) fn set_finishing(&mut self, finishing: bool) {
        if let Some(w) = self.view.waiting.as_mut() {
            w.finishing = finishing;
        }
    }

    /// The redirect was refused. The sign-in goes on if the core still waits for its real
    /// redirect (a forged or stray URL); otherwise it is over and may be started again.
    pub(super) fn on_redirect_error(&mut self, e: &Error, still_waiting: bool) {
        self.set_finishing(false);
        if self.view.phase == Phase::Waiting && !still_waiting {
            self.signed_out();
        }
        let retry = (self.view.phase == Phase::SignedOut).then_some(RetryAction::SignIn);
        self.view.error = Some(ErrorView::from_error(e, retry));
    }

    /// Signed out by the user, with what happened at the provider.
    pub(super) fn on_signed_out(&mut self, message: String) {
        self.signed_out();
        self.view.error = None;
        self.view.notice = Some(Notice::info(message));
    }

    /// The banner's close button: errors and plain notices go; "will retry" stays.
    pub(super) fn dismiss(&mut self) {
        self.view.error = None;
        if self.notice_is(NoticeKind::Info) {
            self.view.notice = None;
        }
    }
}

/// "30 seconds", "a minute", "5 minutes": how long a sign-in may take, for the timeout's message.
pub(super) fn within(timeout: Duration) -> String {
    let secs = timeout.as_secs();
    let minutes = secs.div_ceil(60);
    if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "a minute".into()
    } else {
        format!("{minutes} minutes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::FieldView;

    fn person(name: &str) -> IdentityView {
        IdentityView {
            name: Some(name.into()),
            email: None,
            email_verified: None,
            picture: None,
            initials: "AE".into(),
            subject: "alice".into(),
            issuer: "https://id.example".into(),
            preferred_username: None,
            profile: "default".into(),
            granted: Vec::new(),
            not_granted: Vec::new(),
            access_claims: None,
            grants: Vec::new(),
            groups_overage: false,
            expires_at: Moment::new(Utc::now()),
            refreshable: true,
            obtained: String::new(),
        }
    }

    fn url() -> Url {
        Url::parse("https://id.example/authorize?state=s").expect("url")
    }

    fn waiting() -> Inner {
        let mut i = Inner::default();
        i.view.phase = Phase::SignedOut;
        let attempt = i.on_sign_in_begun(&url(), Utc::now(), true);
        assert_eq!(attempt, 1);
        i
    }

    fn err(kind: ErrorKind) -> Error {
        Error::new(kind, "it went wrong")
    }

    fn retry_notice() -> Notice {
        Notice {
            kind: NoticeKind::RefreshRetry,
            message: "will retry".into(),
            detail: None,
            retry_at: None,
        }
    }

    #[test]
    fn signed_out_forgets_the_session_and_a_retry_notice_but_keeps_other_notices() {
        let mut i = Inner::default();
        i.on_signed_in(person("Alice"), Some("https://p/a.png".into()));
        i.picture = Some(("https://p/a.png".into(), "data:image/png;base64,AA".into()));
        i.backoff.next();
        i.view.notice = Some(retry_notice());
        i.signed_out();
        assert_eq!(i.view.phase, Phase::SignedOut);
        assert!(i.view.identity.is_none() && i.view.waiting.is_none());
        assert!(i.view.notice.is_none());
        assert!(i.picture_claim.is_none() && i.picture.is_none());
        assert_eq!(i.backoff, Default::default());

        i.view.notice = Some(Notice::info("Signed out."));
        i.signed_out();
        assert_eq!(i.view.notice, Some(Notice::info("Signed out.")));
    }

    #[test]
    fn show_identity_uses_the_fetched_picture_only_for_the_same_claim() {
        let mut i = Inner {
            picture: Some(("https://p/a.png".into(), "data:image/png;base64,AA".into())),
            ..Inner::default()
        };
        i.show_identity(person("Alice"), Some("https://p/a.png".into()));
        let shown = i.view.identity.as_ref().and_then(|v| v.picture.clone());
        assert_eq!(shown.as_deref(), Some("data:image/png;base64,AA"));

        i.show_identity(person("Alice"), Some("https://p/b.png".into()));
        assert_eq!(
            i.view.identity.as_ref().map(|v| v.picture.clone()),
            Some(None)
        );
        assert_eq!(i.picture_claim.as_deref(), Some("https://p/b.png"));
    }

    #[test]
    fn on_signed_in_ends_the_sign_in_and_asks_for_the_picture_once() {
        let mut i = waiting();
        i.backoff.next();
        i.view.notice = Some(retry_notice());
        i.view.error = Some(ErrorView::from_error(
            &err(ErrorKind::ProviderInvalid),
            Some(RetryAction::Refresh),
        ));
        assert!(i.on_signed_in(person("Alice"), Some("https://p/a.png".into())));
        assert_eq!(i.view.phase, Phase::SignedIn);
        assert!(i.view.waiting.is_none() && i.sign_in_url.is_none());
        assert!(i.view.notice.is_none() && i.view.error.is_none());
        assert_eq!(i.backoff, Default::default());
        assert_eq!(i.picture_fetch.as_deref(), Some("https://p/a.png"));
        // The fetch is under way: a refresh meanwhile does not start another.
        assert!(!i.on_signed_in(person("Alice"), Some("https://p/a.png".into())));
        // No claim, nothing to fetch.
        i.picture_fetch = None;
        assert!(!i.on_signed_in(person("Alice"), None));
    }

    #[test]
    fn on_signed_in_keeps_an_error_that_asks_for_something_else() {
        let mut i = Inner::default();
        let banner = ErrorView::from_error(&err(ErrorKind::ForeignCallback), None);
        i.view.error = Some(banner.clone());
        i.on_signed_in(person("Alice"), None);
        assert_eq!(i.view.error, Some(banner));
    }

    #[test]
    fn on_picture_shows_it_only_while_its_claim_is_current() {
        let mut i = Inner::default();
        i.on_signed_in(person("Alice"), Some("https://p/a.png".into()));
        i.on_picture("https://p/a.png".into(), "data:image/png;base64,AA".into());
        assert!(i.picture_fetch.is_none());
        let shown = i.view.identity.as_ref().and_then(|v| v.picture.clone());
        assert_eq!(shown.as_deref(), Some("data:image/png;base64,AA"));

        i.on_signed_in(person("Alice"), Some("https://p/new.png".into()));
        i.on_picture("https://p/a.png".into(), "data:image/png;base64,BB".into());
        assert_eq!(
            i.view.identity.as_ref().map(|v| v.picture.clone()),
            Some(None)
        );
    }

    #[test]
    fn on_refresh_failed_signs_out_only_when_the_provider_ended_the_session() {
        for kind in [ErrorKind::SessionExpired, ErrorKind::NotSignedIn] {
            let mut i = Inner::default();
            i.on_signed_in(person("Alice"), None);
            assert_eq!(i.on_refresh_failed(&err(kind), None, "Acme"), None);
            assert_eq!(i.view.phase, Phase::SignedOut);
            let e = i.view.error.expect("banner");
            assert_eq!(e.kind, kind_name(kind));
            assert_eq!(e.retry, Some(RetryAction::SignIn));
        }
    }

    #[test]
    fn on_refresh_failed_retries_a_transient_failure_with_growing_waits() {
        let mut i = Inner::default();
        let stored = || Some((person("Alice"), None));
        let e = err(ErrorKind::ProviderUnreachable);
        assert_eq!(
            i.on_refresh_failed(&e, stored(), "Acme"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(i.view.phase, Phase::SignedIn);
        assert_eq!(
            i.view.identity.as_ref().and_then(|v| v.name.as_deref()),
            Some("Alice")
        );
        let n = i.view.notice.clone().expect("notice");
        assert_eq!(n.kind, NoticeKind::RefreshRetry);
        assert!(n.message.contains("Acme will try again"), "{}", n.message);
        assert!(n.retry_at.is_some() && n.detail.is_some());
        assert!(i.view.error.is_none());
        assert_eq!(
            i.on_refresh_failed(&e, None, "Acme"),
            Some(Duration::from_secs(15))
        );
    }

    #[test]
    fn on_refresh_failed_shows_a_lasting_failure_with_a_refresh_button() {
        let mut i = Inner::default();
        i.on_signed_in(person("Alice"), None);
        let e = err(ErrorKind::ProviderInvalid);
        assert_eq!(i.on_refresh_failed(&e, None, "Acme"), None);
        assert_eq!(i.view.phase, Phase::SignedIn);
        assert_eq!(
            i.view.error.as_ref().and_then(|e| e.retry),
            Some(RetryAction::Refresh)
        );
        assert!(i.view.notice.is_none());
    }

    #[test]
    fn setup_states_forget_the_core_and_show_the_form_or_the_reason() {
        let mut i = Inner::default();
        i.on_set_up("https://id.example.com/t");
        assert_eq!(
            i.view.provider.as_ref().map(|p| p.name.as_str()),
            Some("id.example.com")
        );
        let field = |v: &str| FieldView {
            value: v.into(),
            read_only: false,
            note: None,
        };
        let setup = SetupView {
            issuer: field(""),
            client_id: field(""),
            scopes: field("openid"),
            user_file: None,
            adding: None,
            app_redirect: field("scheme"),
        };
        i.on_needs_setup(setup, Some(&err(ErrorKind::Config)));
        assert_eq!(i.view.phase, Phase::Setup);
        assert!(i.view.provider.is_none() && i.view.setup.is_some());
        assert_eq!(i.view.error.as_ref().and_then(|e| e.retry), None);

        i.on_unreadable_config(&err(ErrorKind::Config));
        assert_eq!(i.view.phase, Phase::Setup);
        assert!(i.view.setup.is_none() && i.latchkey.is_none());
        assert_eq!(
            i.view.error.as_ref().and_then(|e| e.retry),
            Some(RetryAction::Startup)
        );
    }

    #[test]
    fn a_begun_sign_in_waits_and_numbers_its_attempt() {
        let mut i = waiting();
        i.view.notice = Some(Notice::info("old"));
        let attempt = i.on_sign_in_begun(&url(), Utc::now(), false);
        assert_eq!(attempt, 2);
        assert_eq!(i.view.phase, Phase::Waiting);
        assert!(i.view.notice.is_none() && !i.beginning);
        let w = i.view.waiting.clone().expect("waiting");
        assert!(!w.can_use_loopback && !w.browser_opened);
        assert_eq!(i.sign_in_url, Some(url()));

        i.on_browser_opened(Err("no browser".into()));
        let w = i.view.waiting.clone().expect("waiting");
        assert_eq!(w.browser_problem.as_deref(), Some("no browser"));
        i.on_browser_opened(Ok(()));
        let w = i.view.waiting.clone().expect("waiting");
        assert!(w.browser_opened && w.browser_problem.is_none());

        // A fresh push's URL replaces the page to open and the link to copy.
        let pushed = Url::parse("https://id.example/auth?request_uri=urn:two").expect("url");
        i.on_reopened(&pushed);
        assert_eq!(i.sign_in_url, Some(pushed.clone()));
        let w = i.view.waiting.clone().expect("waiting");
        assert_eq!(w.sign_in_url, pushed.as_str());
    }

    #[test]
    fn on_begin_failed_offers_to_sign_in_again() {
        let mut i = Inner::default();
        i.view.phase = Phase::SignedOut;
        i.beginning = true;
        i.on_begin_failed(&err(ErrorKind::ProviderUnreachable));
        assert!(!i.beginning);
        assert_eq!(i.view.phase, Phase::SignedOut);
        assert_eq!(
            i.view.error.as_ref().map(|e| (e.kind.as_str(), e.retry)),
            Some(("provider_unreachable", Some(RetryAction::SignIn)))
        );
    }

    #[test]
    fn a_stale_loopback_sign_in_changes_nothing_but_the_busy_flag() {
        let mut i = waiting();
        i.beginning = true;
        assert!(!i.on_loopback_opened(7, &url(), Utc::now(), None));
        assert!(!i.beginning);
        assert!(i.on_loopback_opened(1, &url(), Utc::now(), Some("no browser".into())));
        let w = i.view.waiting.clone().expect("waiting");
        assert!(!w.browser_opened);
        assert_eq!(w.browser_problem.as_deref(), Some("no browser"));
    }

    #[test]
    fn on_timed_out_stops_only_the_current_waiting_attempt() {
        let mut i = waiting();
        assert!(!i.on_timed_out(0, "a minute"), "an older attempt");
        assert_eq!(i.view.phase, Phase::Waiting);
        assert!(i.on_timed_out(1, "a minute"));
        assert_eq!(i.view.phase, Phase::SignedOut);
        let e = i.view.error.clone().expect("banner");
        assert_eq!(e.kind, "timed_out");
        assert_eq!(e.retry, Some(RetryAction::SignIn));
        assert!(e.message.contains("within a minute"), "{}", e.message);
        assert!(!i.on_timed_out(1, "a minute"), "no longer waiting");
    }

    #[test]
    fn timeouts_are_said_in_seconds_or_minutes() {
        assert_eq!(within(Duration::from_secs(45)), "45 seconds");
        assert_eq!(within(Duration::from_secs(60)), "a minute");
        assert_eq!(within(Duration::from_secs(61)), "2 minutes");
        assert_eq!(within(Duration::from_secs(600)), "10 minutes");
    }

    #[test]
    fn on_cancelled_signs_out_with_a_notice_and_outdates_the_attempt() {
        let mut i = waiting();
        i.on_cancelled();
        assert_eq!(i.view.phase, Phase::SignedOut);
        assert_eq!(i.attempt, 2);
        assert!(
            i.view
                .notice
                .as_ref()
                .is_some_and(|n| n.kind == NoticeKind::Info)
        );
        // Not waiting: nothing to cancel.
        i.view.notice = None;
        i.on_cancelled();
        assert_eq!(i.attempt, 2);
        assert!(i.view.notice.is_none());
    }

    #[test]
    fn on_redirect_error_keeps_waiting_while_the_core_does() {
        let mut i = waiting();
        i.set_finishing(true);
        let e = err(ErrorKind::ForeignCallback);
        i.on_redirect_error(&e, true);
        assert_eq!(i.view.phase, Phase::Waiting);
        assert!(!i.view.waiting.as_ref().is_some_and(|w| w.finishing));
        assert_eq!(i.view.error.as_ref().and_then(|e| e.retry), None);

        i.on_redirect_error(&err(ErrorKind::AccessDenied), false);
        assert_eq!(i.view.phase, Phase::SignedOut);
        assert_eq!(
            i.view.error.as_ref().map(|e| (e.kind.as_str(), e.retry)),
            Some(("access_denied", Some(RetryAction::SignIn)))
        );
    }

    #[test]
    fn a_link_before_setup_is_explained() {
        let mut i = Inner::default();
        i.on_link_before_setup("Acme");
        let e = i.view.error.expect("banner");
        assert_eq!(e.kind, "foreign_callback");
        assert!(e.message.starts_with("Acme is not set up yet"));
    }

    #[test]
    fn dismiss_keeps_the_retry_notice() {
        let mut i = Inner::default();
        i.view.error = Some(ErrorView::from_error(&err(ErrorKind::Browser), None));
        i.view.notice = Some(retry_notice());
        i.dismiss();
        assert!(i.view.error.is_none());
        assert_eq!(i.view.notice, Some(retry_notice()));
        i.on_signed_out("Signed out.".into());
        assert_eq!(i.view.notice, Some(Notice::info("Signed out.")));
        i.dismiss();
        assert!(i.view.notice.is_none());
    }
}
