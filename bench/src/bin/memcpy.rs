//! `memcpy [SIZE]`: how fast this machine's `memcpy` (the C library's,
//! which `copy_from_slice` calls) copies SIZE bytes (default 16 KiB, a TLS
//! record) for each distance from source to destination modulo 4 KiB.
//!
//! On CPUs with "fast short rep movsb" (FSRM), glibc 2.36 copies more than
//! 2,112 bytes with `rep movsb`; on some AMD CPUs that runs at a twentieth
//! of its speed when the destination lies a few dozen bytes past the source
//! modulo 4 KiB (1 to 31 on this project's EPYC). rustls copies every received record out of its buffer into
//! a fresh one, so which connections pay depends on where the allocator put
//! the two: see `bench/README.md` (wss-echo64k).

use std::hint::black_box;
use std::time::Instant;

fn main() {
    let size: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("SIZE: a number of bytes"))
        .unwrap_or(16 * 1024);
    // Both buffers start on a page: offsets below are page offsets.
    let src = vec![1u8; size + 2 * 4096];
    let mut dst = vec![2u8; size + 2 * 4096];
    let src_base = 4096 - src.as_ptr() as usize % 4096;
    let dst_base = 4096 - dst.as_ptr() as usize % 4096;
    println!("memcpy of {size} bytes, by distance from source to destination (mod 4 KiB)");
    for distance in [0usize, 1, 8, 16, 24, 31, 32, 48, 64, 2048, 4096 - 16] {
        let (s, d) = (src_base + 8, dst_base + (8 + distance) % 4096);
        let rounds = (1 << 28) / size.max(64);
        let t = Instant::now();
        for _ in 0..rounds {
            dst[d..d + size].copy_from_slice(black_box(&src[s..s + size]));
            black_box(&mut dst);
        }
        let per = t.elapsed().as_secs_f64() / rounds as f64;
        println!(
            "  +{distance:4} bytes: {:6.1} GB/s ({:6.0} ns per copy)",
            size as f64 / per / 1e9,
            per * 1e9
        );
    }
}
