//! Cross-module tests: the authorization matrix, token flows, forgery.
