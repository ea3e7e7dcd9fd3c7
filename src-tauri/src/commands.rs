//! The commands the window may invoke (and `build.rs` lists, and `capabilities/main.json`
//! grants). Each returns the whole [`ViewModel`]; none returns a token.

use tauri::{AppHandle, Runtime, State};

use crate::state::{AppState, SettingsForm};
use crate::view::{UiError, ViewModel};

#[tauri::command]
pub async fn get_state(state: State<'_, AppState>) -> Result<ViewModel, UiError> {
    Ok(state.view())
}

#[tauri::command]
pub async fn save_settings<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    form: SettingsForm,
) -> Result<ViewModel, UiError> {
    state.save_settings(&app, form).await
}

#[tauri::command]
pub async fn sign_in<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<ViewModel, UiError> {
    state.sign_in(&app).await
}

#[tauri::command]
pub async fn cancel_sign_in<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<ViewModel, UiError> {
    Ok(state.cancel_sign_in(&app))
}

#[tauri::command]
pub async fn open_browser_again<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<ViewModel, UiError> {
    state.open_browser_again(&app)
}

#[tauri::command]
pub async fn sign_out<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    also_provider: bool,
) -> Result<ViewModel, UiError> {
    state.sign_out(&app, also_provider).await
}

#[tauri::command]
pub async fn retry<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<ViewModel, UiError> {
    Ok(state.retry(&app).await)
}

#[tauri::command]
pub async fn dismiss<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<ViewModel, UiError> {
    Ok(state.dismiss(&app))
}
