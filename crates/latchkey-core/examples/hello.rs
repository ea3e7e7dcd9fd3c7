//! The floor for any process in the benchmarks: a hello-world built with the same profile as
//! `latchkey`, so `make bench` can say how far `latchkey token` is above process start-up.

fn main() {
    println!("hello");
}
