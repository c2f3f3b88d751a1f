//! With the `mpi` feature: compiles `src/collective/mpi_shim.c` with the MPI compiler wrapper
//! (`mpicc`, or `$MPICC`) and links the MPI library it names. Without the feature: nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MPICC");
    if std::env::var_os("CARGO_FEATURE_MPI").is_some() {
        #[cfg(feature = "mpi")]
        mpi::build();
    }
}

#[cfg(feature = "mpi")]
mod mpi {
    use std::process::Command;

    const SHIM: &str = "src/collective/mpi_shim.c";

    fn mpicc() -> String {
        std::env::var("MPICC").unwrap_or_else(|_| "mpicc".into())
    }

    /// The link flags of the wrapper: OpenMPI's `--showme:link`, else MPICH's `-link_info`
    /// (whose first word is the compiler itself).
    fn link_flags() -> Vec<String> {
        let run = |arg: &str| {
            Command::new(mpicc())
                .arg(arg)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        if let Some(out) = run("--showme:link") {
            return out.split_whitespace().map(str::to_string).collect();
        }
        if let Some(out) = run("-link_info") {
            return out.split_whitespace().skip(1).map(str::to_string).collect();
        }
        panic!(
            "the `mpi` feature needs an MPI compiler wrapper: `{}` was not found or gave no link \
             flags (Debian/Ubuntu: apt-get install libopenmpi-dev openmpi-bin; or set MPICC)",
            mpicc()
        );
    }

    pub fn build() {
        println!("cargo:rerun-if-changed={SHIM}");
        cc::Build::new()
            .compiler(mpicc())
            .file(SHIM)
            .warnings(true)
            .compile("aha_mpi_shim");
        for flag in link_flags() {
            if let Some(dir) = flag.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={dir}");
            } else if let Some(lib) = flag.strip_prefix("-l") {
                println!("cargo:rustc-link-lib={lib}");
            } else if flag.starts_with("-Wl,") || flag == "-pthread" {
                println!("cargo:rustc-link-arg={flag}");
            }
        }
    }
}
