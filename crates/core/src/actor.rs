//! Who makes a change: the name written to `audit_logs.actor`.

/// Who performs an operation, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `admin`, `key:cl_xxxxxxxx`, `system:<component>`.
    pub name: String,
    /// Client address, when known.
    pub ip: Option<String>,
}

impl Actor {
    /// The operator using the admin token.
    pub fn admin(ip: Option<String>) -> Actor {
        Actor {
            name: "admin".to_owned(),
            ip,
        }
    }

    /// A tenant acting with one of its API keys (identified by its prefix).
    pub fn key(prefix: &str, ip: Option<String>) -> Actor {
        Actor {
            name: format!("key:{prefix}"),
            ip,
        }
    }

    /// The platform itself (`reconciler`, `billing`…).
    pub fn system(component: &str) -> Actor {
        Actor {
            name: format!("system:{component}"),
            ip: None,
        }
    }
}
