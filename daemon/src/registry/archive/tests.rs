//! Unit tests of saving and loading against a temp store.
