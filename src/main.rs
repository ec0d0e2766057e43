fn main() {
    if let Err(e) = fenghuo::cli::main() {
        eprintln!("fenghuo: {e:#}");
        std::process::exit(1);
    }
}
