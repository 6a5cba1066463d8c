//! The backend-agnostic conformance suite. Every backend runs it from its own tests.
