//! Deterministic network simulator: links with rate, delay, queue, loss, reordering, duplication and outages, in virtual time.
