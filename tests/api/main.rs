//! Integration suite: starts the real daemon and drives it over sockets.
