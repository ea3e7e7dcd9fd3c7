//! The benchmark's baseline: the smallest process that reads one secret from the OS keychain with
//! the same store crate Latchkey uses.
//!
//!     read_secret <service> <user>

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(service), Some(user)) = (args.next(), args.next()) else {
        eprintln!("usage: read_secret <service> <user>");
        return std::process::ExitCode::from(2);
    };
    let result = latchkey_core::store::KeyringStore::new(&service);
    match latchkey_core::store::SecretStore::get(&result, &user) {
        Ok(Some(secret)) => {
            println!("{} bytes", secret.len());
            std::process::ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("no such secret");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::from(2)
        }
    }
}
