//! Authentication and authorization for the registry.
