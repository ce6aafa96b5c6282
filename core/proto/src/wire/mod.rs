//! Wire formats: TCP header and options, every MPTCP v1 option, TCP-in-UDP framing, checksums and MPTCP crypto.
