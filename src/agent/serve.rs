//! The agent's main loop: read the request, answer `hello`, dispatch the operation, report.
