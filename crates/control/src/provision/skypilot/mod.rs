//! The `skypilot` provisioner (being written).
