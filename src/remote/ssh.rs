//! Transport over OpenSSH (openssh crate, native mux): strict host keys, sudo, reconnects.
