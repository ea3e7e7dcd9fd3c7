//! The commands the window may invoke (and `build.rs` lists, and `permissions/default.toml`
//! grants). Each returns the whole [`ViewModel`]; none returns a token.

use tauri::{AppHandle, Runtime, State};

use crate::controller::{AppState, LONG_POLL, SettingsForm};
use crate::error::UiError;
use crate::models::ViewModel;

#[tauri::command]
pub(crate) async fn get_state(state: State<'_, AppState>) -> Result<ViewModel, UiError> {
    Ok(state.view())
}

/// The window's long poll: the view once its `seq` is past `after` (at once without one), or
/// unchanged after [`LONG_POLL`]; the window then asks again. See [`AppState::next_view`] for why
/// not events.
#[tauri::command]
pub(crate) async fn next_state(
    state: State<'_, AppState>,
    after: Option<u64>,
) -> Result<ViewModel, UiError> {
    Ok(state.next_view(after, LONG_POLL).await)
}

#[tauri::command]
pub(crate) async fn save_settings<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    form: SettingsForm,
) -> Result<ViewModel, UiError> {
    state.save_settings(&app, form).await
}

#[tauri::command]
pub(crate) async fn sign_in<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<ViewModel, UiError> {
    state.sign_in(&app).await
}

#[tauri::command]
pub(crate) async fn cancel_sign_in(state: State<'_, AppState>) -> Result<ViewModel, UiError> {
    Ok(state.cancel_sign_in())
}

#[tauri::command]
pub(crate) async fn open_browser_again(state: State<'_, AppState>) -> Result<ViewModel, UiError> {
    state.open_browser_again().await
}

#[tauri::command]
pub(crate) async fn sign_out(
    state: State<'_, AppState>,
    also_provider: bool,
) -> Result<ViewModel, UiError> {
    state.sign_out(also_provider).await
}

#[tauri::command]
pub(crate) async fn retry<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<ViewModel, UiError> {
    Ok(state.retry(&app).await)
}

/// Shows another signed-in account (from the keychain: no browser).
#[tauri::command]
pub(crate) async fn switch_account<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    profile: String,
) -> Result<ViewModel, UiError> {
    state.switch_account(&app, profile).await
}

/// Adds an account: with the shown account's provider (signs in at once), or with another
/// provider (the first-run form, for a new profile).
#[tauri::command]
pub(crate) async fn add_account<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    other_provider: bool,
) -> Result<ViewModel, UiError> {
    state.add_account(&app, other_provider).await
}

#[tauri::command]
pub(crate) async fn cancel_add_account<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<ViewModel, UiError> {
    Ok(state.cancel_add_account(&app).await)
}

/// "The provider refused this app's link": sign in through a local address from now on.
#[tauri::command]
pub(crate) async fn use_loopback<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<ViewModel, UiError> {
    state.use_loopback(&app).await
}

/// Signs out of every account, revoking each where the provider can.
#[tauri::command]
pub(crate) async fn sign_out_all<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<ViewModel, UiError> {
    state.sign_out_all(&app).await
}

#[tauri::command]
pub(crate) async fn dismiss(state: State<'_, AppState>) -> Result<ViewModel, UiError> {
    Ok(state.dismiss())
}
