//! What the user service's handlers share.

use crate::store::UserStore;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: UserStore,
}
