fn main() {
    for w in [1u64, 8, 64, 512] {
        let r = tenure_sim::bench::raw_ping_pong(2_000_000, w, 1);
        println!("window {w}: {:.0} msgs/s, wall {:?}, virtual {:?}", r.msgs_per_s(), r.wall, r.virtual_time);
    }
}
