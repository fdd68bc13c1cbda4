use clap::Parser;

fn main() {
    // SAFETY: the first statement of `main`, before any thread exists (rayon, the progress bar
    // and wgpu start theirs later), so nothing can read the environment while it changes. Sets
    // XDG_RUNTIME_DIR to a private directory when it is missing, so that Mesa's GPU drivers do
    // not print their warning on the user's terminal.
    unsafe {
        fq_runtime::driver_env::prepare();
    }
    let args = match fq_validate::Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() {
                fq_validate::EXIT_ERROR
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = fq_validate::run(
        &args,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code);
}
