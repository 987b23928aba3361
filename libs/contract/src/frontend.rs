//! What the page and the gateway agree on about the page's own spans: the service they are
//! exported as, and the actions a person takes (`frontend.action` on each action's root span,
//! the `action` label of `frontend_action_duration_seconds`).

/// The `service.name` of the page's spans, and the only one the gateway relays.
pub const SERVICE_NAME: &str = "frontend";

/// The page's actions; anything else is counted as `other`.
pub const ACTIONS: [&str; 5] = [
    "create_user",
    "check_email",
    "load_lists",
    "switch_fault_on",
    "switch_faults_off",
];
