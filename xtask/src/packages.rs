//! `cargo xtask deb | install | image`: dock6's packages from the release
//! binary, made by the `dock6-pack` crate (which the tests use too).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use dock6_pack::Sources;

use crate::{PACKAGES, cargo, install_packages, root_dir, run, target_dir};

/// The release binary, built now.
fn release_sources() -> Result<Sources> {
    install_packages(PACKAGES)?;
    let mut build = cargo();
    build.args(["build", "--release", "--bin", "dock6"]);
    run(build)?;
    Ok(Sources {
        binary: target_dir().join("release/dock6"),
        repo: root_dir(),
        version: dock6_version()?,
    })
}

/// The `version` of dock6's Cargo.toml.
fn dock6_version() -> Result<String> {
    let manifest = std::fs::read_to_string(root_dir().join("Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .map(str::to_string)
        .context("no version in Cargo.toml")
}

/// `deb [--out DIR]` (default target/deb).
pub fn deb(args: &[String]) -> Result<()> {
    let out = match args {
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        [] => root_dir().join("target/deb"),
        _ => bail!("usage: cargo xtask deb [--out DIR]"),
    };
    std::fs::create_dir_all(&out)?;
    let deb = dock6_pack::deb::build_deb(&release_sources()?, &out)?;
    println!("{}", deb.display());
    eprintln!(
        "xtask: install with `apt-get install ./{}`, then `dock6 check` and `systemctl enable --now dock6`",
        deb.file_name().unwrap_or_default().to_string_lossy()
    );
    Ok(())
}

/// `install [--root DIR] [--prefix PREFIX]` (default / and /usr/local).
pub fn install(args: &[String]) -> Result<()> {
    let mut root = PathBuf::from("/");
    let mut prefix = "/usr/local".to_string();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--root" => root = PathBuf::from(value),
            "--prefix" => prefix = value.clone(),
            _ => bail!("usage: cargo xtask install [--root DIR] [--prefix PREFIX]"),
        }
    }
    let installed = dock6_pack::install::install(&release_sources()?, &root, &prefix)?;
    println!("installed {}", installed.binary.display());
    println!("installed {}", installed.unit.display());
    println!("installed {}", installed.man_page.display());
    match installed.config_written {
        true => println!("installed {}", installed.config.display()),
        false => println!("kept {} (yours)", installed.config.display()),
    }
    if root == Path::new("/") && Path::new("/run/systemd/system").exists() {
        let mut reload = Command::new("systemctl");
        reload.arg("daemon-reload");
        run(reload)?;
    }
    println!("next: `dock6 check`, then `systemctl enable --now dock6`");
    Ok(())
}

/// `image [--tag TAG]` (default dock6:VERSION): the tarball in target/,
/// imported into the Docker that `docker` reaches ($DOCKER_HOST).
pub fn image(args: &[String]) -> Result<()> {
    let sources = release_sources()?;
    let tag = match args {
        [flag, tag] if flag == "--tag" => tag.clone(),
        [] => format!("dock6:{}", sources.version),
        _ => bail!("usage: cargo xtask image [--tag TAG]"),
    };
    let dir = root_dir().join("target");
    let tarball = dir.join("dock6-image.tar");
    dock6_pack::image::image_tarball(&sources.binary, &dir, &tarball)?;
    let id = dock6_pack::image::import(Command::new("docker"), &tarball, &tag)?;
    println!("{tag} {id}");
    eprintln!(
        "xtask: run it with `docker run -d --name dock6 --restart always --network host --cap-add NET_ADMIN \
         --cap-add NET_RAW --security-opt systempaths=unconfined -v /var/run/docker.sock:/var/run/docker.sock {tag}`"
    );
    Ok(())
}
