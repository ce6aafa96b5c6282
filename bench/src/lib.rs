//! braid-bench as a library: the attack scenarios, shared by the CI tests and the
//! `braid-bench attack` benchmark.

pub mod attack;
