//! `freezeframe list-containers` (`ls`).

use anyhow::Result;
use freezeframe::{Bases, BtrfsProvider, Config, RuntimeKind, SystemRunner};
use serde_json::json;

use crate::cli::ListArgs;
use crate::exit;

/// Lists what each runtime used in the config sees.
pub fn run(config: &Config, args: &ListArgs) -> Result<u8> {
    let tools = crate::system::toolbox(config);
    let mut kinds: Vec<RuntimeKind> = config.containers.iter().map(|c| c.runtime).collect();
    kinds.sort_by_key(|k| k.to_string());
    kinds.dedup();
    let mut rows = Vec::new();
    let mut problems = 0;
    for kind in kinds {
        let Some(rt) = tools.runtime(kind) else {
            continue;
        };
        match rt.list(&config.containers) {
            Ok(list) => {
                for l in list {
                    let configured = config.container(&l.id).is_some_and(|c| c.runtime == kind);
                    let vol = l.private.as_deref().and_then(|p| {
                        config.volume_for(
                            p,
                            config.container(&l.id).and_then(|c| c.volume.as_deref()),
                        )
                    });
                    rows.push(json!({
                        "runtime": kind.to_string(),
                        "id": l.id,
                        "state": l.state,
                        "private": l.private,
                        "configured": configured,
                        "volume": vol.map(|v| v.name.clone()),
                        "provider": vol.map(|v| format!("{:?}", v.provider).to_lowercase()),
                    }));
                }
            }
            Err(e) => {
                problems += 1;
                eprintln!("freezeframe: {kind} runtime: {e}");
            }
        }
    }
    let bases = bases_of(config);
    for r in &mut rows {
        let key = |c: Option<&str>| {
            r["volume"]
                .as_str()
                .map(|v| Bases::key(v, c))
                .unwrap_or_default()
        };
        let id = r["id"].as_str().map(str::to_owned);
        let b = bases
            .iter()
            .find(|(k, _)| *k == key(id.as_deref()) || *k == key(None));
        r["base"] = b.map_or(serde_json::Value::Null, |(_, b)| b.clone());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<8} {:<16} {:<12} {:<10} {:<10} PRIVATE",
            "RUNTIME", "ID", "STATE", "VOLUME", "PROVIDER"
        );
        for r in &rows {
            let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
            let id = if r["configured"] == true {
                s("id")
            } else {
                format!("{} (not configured)", s("id"))
            };
            println!(
                "{:<8} {:<16} {:<12} {:<10} {:<10} {}",
                s("runtime"),
                id,
                s("state"),
                s("volume"),
                s("provider"),
                s("private")
            );
        }
    }
    if !args.json && !bases.is_empty() {
        println!(
            "\n{:<24} {:<32} {:<24} EXCLUSIVE",
            "BASE OF", "SNAPSHOT", "KEPT BY RUN"
        );
        for (k, b) in &bases {
            println!(
                "{:<24} {:<32} {:<24} {}",
                k,
                b["snapshot"].as_str().unwrap_or("-"),
                b["run"].as_str().unwrap_or("-"),
                b["exclusive_bytes"]
                    .as_u64()
                    .map_or("?".to_owned(), freezeframe::human_size)
            );
        }
    }
    Ok(if problems == 0 {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// The base snapshots this config's state dir keeps, by key, with the
/// space each holds alone (what removing it would free).
fn bases_of(config: &Config) -> Vec<(String, serde_json::Value)> {
    let Ok(bases) = Bases::load(&config.state_dir) else {
        return Vec::new();
    };
    let btrfs = BtrfsProvider::new(std::sync::Arc::new(SystemRunner));
    bases
        .bases
        .into_iter()
        .map(|(k, b)| {
            // btrfs says what only the base holds; a thin pool does not
            // cheaply (shown as `?`).
            let excl = (b.provider == freezeframe::ProviderKind::Btrfs)
                .then(|| btrfs.exclusive_bytes(&b.snapshot.root).ok())
                .flatten();
            let v = json!({
                "snapshot": b.snapshot.name,
                "path": b.snapshot.root,
                "run": b.run,
                "uuid": b.id.uuid,
                "generation": b.id.generation,
                "exclusive_bytes": excl,
            });
            (k, v)
        })
        .collect()
}
