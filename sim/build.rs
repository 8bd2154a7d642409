// madsim's simulator exists only under `--cfg madsim` (set in .cargo/config.toml). A RUSTFLAGS
// variable in the environment silently replaces that setting; say so instead of building a
// crate that would run on real time and real threads.
fn main() {
    println!("cargo:rerun-if-env-changed=RUSTFLAGS");
    if std::env::var_os("CARGO_CFG_MADSIM").is_none() {
        println!(
            "cargo:warning=tenure-sim is built without `--cfg madsim`: a RUSTFLAGS variable \
             probably replaced .cargo/config.toml's setting. Add `--cfg madsim` to it."
        );
    }
}
