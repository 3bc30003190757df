//! `llmpm save` and `llmpm load`: round trips, dedup, hostile archives refused with nothing visible, a killed load.
//!
//! The hostile archives are built here with a tar writer of the test's own
//! (not the daemon's), from a real saved archive taken apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use llmpm_tests::registry::sha256_digest;
use llmpm_tests::{assert_ok, http, stderr, stdout, TestContext, TinyLlamaSpec};
use serde_json::{json, Value};

/// A daemon with `m` (and `m2`, the same weights, another system prompt).
fn publisher() -> TestContext {
    let ctx = TestContext::started();
    ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    for (name, system) in [("m", "You are terse."), ("m2", "You are verbose.")] {
        std::fs::write(
            ctx.work.join("Modelfile"),
            format!("FROM ./tiny.gguf\nSYSTEM {system}\n"),
        )
        .unwrap();
        assert_ok(&ctx.cli(&["create", name, "-f", "Modelfile"]));
    }
    ctx
}

fn save(ctx: &TestContext, models: &[&str], file: &str) -> PathBuf {
    let path = ctx.work.join(file);
    let mut args = vec!["save"];
    args.extend_from_slice(models);
    args.extend(["-o", path.to_str().unwrap()]);
    assert_ok(&ctx.cli(&args));
    path
}

/// `llmpm load --json -i FILE`, or from stdin when `file` is `None` (then `bytes` are piped).
fn load(ctx: &TestContext, file: Option<&Path>, bytes: &[u8], extra: &[&str]) -> Output {
    let mut args = vec!["load", "--json"];
    if let Some(f) = file {
        args.extend(["-i", f.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    let mut child = ctx
        .cli_cmd(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if file.is_none() {
        // The daemon may refuse before it has read everything: a broken pipe is fine.
        let _ = stdin.write_all(bytes);
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// name → manifest digest of every listed model.
fn models(ctx: &TestContext) -> Vec<(String, String)> {
    let out = ctx.cli(&["list", "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let mut m: Vec<(String, String)> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    m.sort();
    m
}

fn tmp_files(ctx: &TestContext) -> Vec<String> {
    std::fs::read_dir(ctx.home.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn blob_bytes(ctx: &TestContext) -> Vec<(String, Vec<u8>)> {
    ctx.blob_files()
        .into_iter()
        .map(|f| {
            let b = std::fs::read(ctx.home.join("blobs/sha256").join(&f)).unwrap();
            (f, b)
        })
        .collect()
}

// --- A tar reader and writer of the test's own -----------------------------

#[derive(Debug, Clone)]
struct Ent {
    name: String,
    flag: u8,
    data: Vec<u8>,
    /// The size the header declares, when it is to lie.
    declared: Option<u64>,
}

fn ent(name: &str, data: &[u8]) -> Ent {
    Ent {
        name: name.to_owned(),
        flag: b'0',
        data: data.to_vec(),
        declared: None,
    }
}

fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    field[..w].copy_from_slice(&s.as_bytes()[s.len() - w..]);
}

fn tar_header(name: &str, size: u64, flag: u8, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[156] = flag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum);
    h
}

fn tar_build(ents: &[Ent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in ents {
        let size = e.declared.unwrap_or(e.data.len() as u64);
        let link = if matches!(e.flag, b'1' | b'2') {
            "/etc/passwd"
        } else {
            ""
        };
        out.extend_from_slice(&tar_header(&e.name, size, e.flag, link));
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn tar_entries(bytes: &[u8]) -> Vec<Ent> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() && bytes[at..at + 512].iter().any(|&b| b != 0) {
        let h = &bytes[at..at + 512];
        let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8(h[..name_end].to_vec()).unwrap();
        let size_txt = std::str::from_utf8(&h[124..135]).unwrap();
        let size = usize::from_str_radix(size_txt, 8).unwrap();
        let data = bytes[at + 512..at + 512 + size].to_vec();
        out.push(Ent {
            name,
            flag: h[156],
            data,
            declared: None,
        });
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

fn index_of(ents: &[Ent]) -> Value {
    let i = ents.iter().find(|e| e.name == "index.json").unwrap();
    serde_json::from_slice(&i.data).unwrap()
}

fn set_index(ents: &mut [Ent], index: &Value) {
    let i = ents.iter_mut().find(|e| e.name == "index.json").unwrap();
    i.data = serde_json::to_vec(index).unwrap();
}

/// The entry of the largest blob (the weights).
fn weights(ents: &mut [Ent]) -> &mut Ent {
    ents.iter_mut().max_by_key(|e| e.data.len()).unwrap()
}

// --- Tests ---------------------------------------------------------------

#[test]
fn save_rm_load_gives_back_the_same_manifests_blobs_and_signatures() {
    let ctx = publisher();
    assert_ok(&ctx.cli(&["keygen", "--out", "k"]));
    assert_ok(&ctx.cli(&["sign", "m", "--key", "k.key"]));
    assert_ok(&ctx.cli(&["cp", "m", "me/alias:v1"]));
    let before_models = models(&ctx);
    let before_blobs = blob_bytes(&ctx);
    let file = save(&ctx, &["m", "m2", "me/alias:v1"], "all.tar");

    // The archive is an OCI layout: three named models (one twice), one signature artifact.
    let ents = tar_entries(&std::fs::read(&file).unwrap());
    assert_eq!(ents[0].name, "oci-layout");
    assert_eq!(ents[0].data, br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = index_of(&ents);
    let refs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert_eq!(
        refs,
        [
            "registry.ollama.ai/library/m:latest",
            "registry.ollama.ai/library/m2:latest",
            "registry.ollama.ai/me/alias:v1"
        ]
    );
    assert_eq!(index["manifests"].as_array().unwrap().len(), 4, "{index}");
    let mut blob_names: Vec<&str> = ents
        .iter()
        .filter_map(|e| e.name.strip_prefix("blobs/sha256/"))
        .filter(|n| !n.is_empty())
        .collect();
    let count = blob_names.len();
    blob_names.sort();
    blob_names.dedup();
    assert_eq!(count, blob_names.len(), "each blob once");
    for e in ents.iter().filter(|e| e.name.len() > "blobs/sha256/".len()) {
        let hex = e.name.strip_prefix("blobs/sha256/").unwrap();
        assert_eq!(
            sha256_digest(&e.data),
            format!("sha256:{hex}"),
            "{}",
            e.name
        );
    }
    // Every store blob is in it (the store holds only these models).
    assert_eq!(
        blob_names,
        before_blobs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
    );

    for m in ["m", "m2", "me/alias:v1"] {
        assert_ok(&ctx.cli(&["rm", m]));
    }
    assert!(ctx.blob_files().is_empty(), "{:?}", ctx.blob_files());
    let out = load(&ctx, Some(&file), &[], &[]);
    assert_ok(&out);
    let r: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(r["blobs_present"], 0);
    assert_eq!(r["blobs_written"].as_u64().unwrap() as usize, count);
    assert_eq!(models(&ctx), before_models);
    assert_eq!(blob_bytes(&ctx), before_blobs);
    let verify = ctx.cli(&["verify", "--json"]);
    assert_ok(&verify);
    let v: Value = serde_json::from_str(&stdout(&verify)).unwrap();
    assert_eq!(v["corrupt"], json!([]), "{v}");
    assert_eq!(v["missing"], json!([]), "{v}");
    // The signature came along and still verifies.
    assert_ok(&ctx.cli(&["verify", "--signatures", "m", "--key", "k.pub"]));
    assert!(tmp_files(&ctx).is_empty(), "{:?}", tmp_files(&ctx));

    // `llmpm export` (a model's files to a directory) is unchanged beside it.
    let dir = ctx.work.join("files");
    assert_ok(&ctx.cli(&["export", "m", dir.to_str().unwrap()]));
    assert!(dir.join("manifest.json").exists());
}

#[test]
fn save_to_stdout_and_load_from_stdin_with_a_new_name() {
    let ctx = publisher();
    let out = ctx.cli(&["save", "m", "-o", "-"]);
    assert_ok(&out);
    let archive = out.stdout;
    let out = load(&ctx, None, &archive, &["--name", "copy:v2"]);
    assert_ok(&out);
    let r: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(r["models"], json!(["registry.ollama.ai/library/copy:v2"]));
    assert_eq!(r["blobs_written"], 0, "every blob was already here");
    let m = models(&ctx);
    let digest = |n: &str| m.iter().find(|(k, _)| k == n).unwrap().1.clone();
    assert_eq!(digest("copy:v2"), digest("m:latest"));

    // `--name` names one model; an archive of two refuses it.
    let two = save(&ctx, &["m", "m2"], "two.tar");
    let out = load(&ctx, Some(&two), &[], &["--name", "x"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("holds 2 models"), "{}", stderr(&out));
}

#[test]
fn load_writes_only_the_blobs_the_store_lacks() {
    let src = publisher();
    let file = save(&src, &["m2"], "m2.tar");
    // Another store with `m`: same weights, another system prompt.
    let dst = TestContext::started();
    dst.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    std::fs::write(
        dst.work.join("Modelfile"),
        "FROM ./tiny.gguf\nSYSTEM You are terse.\n",
    )
    .unwrap();
    assert_ok(&dst.cli(&["create", "m", "-f", "Modelfile"]));
    let weights_hex: String = {
        let ents = tar_entries(&std::fs::read(&file).unwrap());
        let w = ents.iter().max_by_key(|e| e.data.len()).unwrap();
        w.name.strip_prefix("blobs/sha256/").unwrap().to_owned()
    };
    let weights_file = dst.home.join("blobs/sha256").join(&weights_hex);
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&weights_file).unwrap());
    let out = load(&dst, Some(&file), &[], &[]);
    assert_ok(&out);
    let r: Value = serde_json::from_str(&stdout(&out)).unwrap();
    // Weights and the shared params/config were present; the system layer and manifest are new.
    assert!(r["blobs_present"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["blobs_written"].as_u64().unwrap() >= 2, "{r}");
    let gguf_len = std::fs::metadata(&weights_file).unwrap().len();
    assert!(r["bytes_written"].as_u64().unwrap() < gguf_len, "{r}");
    // The weights file was not rewritten.
    let after = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&weights_file).unwrap());
    assert_eq!(inode, after);
    assert_eq!(models(&dst).len(), 2);
    assert_eq!(
        models(&dst)
            .iter()
            .find(|(n, _)| n == "m2:latest")
            .map(|x| &x.1),
        models(&src)
            .iter()
            .find(|(n, _)| n == "m2:latest")
            .map(|x| &x.1)
    );
}

/// Loads `bytes` (from a file, then from stdin) and checks the refusal names `why` and nothing changed.
fn assert_refused(ctx: &TestContext, what: &str, bytes: &[u8], why: &[&str]) {
    let file = ctx.work.join("hostile.tar");
    std::fs::write(&file, bytes).unwrap();
    for via_file in [true, false] {
        let out = if via_file {
            load(ctx, Some(&file), &[], &[])
        } else {
            load(ctx, None, bytes, &[])
        };
        let err = stderr(&out);
        assert!(!out.status.success(), "{what}: loaded!\n{}", stdout(&out));
        assert!(
            why.iter().any(|w| err.contains(w)),
            "{what} (via {}): {err}",
            if via_file { "file" } else { "stdin" }
        );
        assert!(models(ctx).is_empty(), "{what}: {:?}", models(ctx));
        assert!(
            ctx.blob_files().is_empty(),
            "{what}: {:?}",
            ctx.blob_files()
        );
        assert!(tmp_files(ctx).is_empty(), "{what}: {:?}", tmp_files(ctx));
    }
}

#[test]
fn hostile_archives_are_refused_clearly_and_leave_nothing() {
    let mut ctx = publisher();
    let good = std::fs::read(save(&ctx, &["m"], "m.tar")).unwrap();
    for m in ["m", "m2"] {
        assert_ok(&ctx.cli(&["rm", m]));
    }
    assert!(ctx.blob_files().is_empty());
    let ents = tar_entries(&good);

    // Truncated anywhere: inside a header, inside content, at an entry
    // boundary, inside the end marker.
    let bounds: Vec<usize> = {
        let mut at = 0;
        let mut v = Vec::new();
        for e in &ents {
            v.push(at);
            at += 512 + e.data.len().div_ceil(512) * 512;
        }
        v.push(at);
        v
    };
    let mut cuts = vec![1, 300, good.len() / 2, good.len() - 1, good.len() - 512];
    cuts.extend(bounds.iter().skip(1).copied());
    cuts.extend(bounds.iter().skip(1).map(|b| b + 100));
    for cut in cuts.into_iter().filter(|&c| c < good.len()) {
        assert_refused(&ctx, &format!("cut at {cut}"), &good[..cut], &["truncated"]);
    }

    let mut bad = ents.clone();
    let w = weights(&mut bad);
    let mid = w.data.len() / 2;
    w.data[mid] ^= 1;
    assert_refused(
        &ctx,
        "flipped byte",
        &tar_build(&bad),
        &["is corrupt", "hash to"],
    );

    // index.json names a manifest that is not there; a manifest's layer is not there.
    let mut bad = ents.clone();
    let mut index = index_of(&bad);
    index["manifests"][0]["digest"] = json!(format!("sha256:{}", "ab".repeat(32)));
    set_index(&mut bad, &index);
    assert_refused(
        &ctx,
        "missing manifest",
        &tar_build(&bad),
        &["which is not in the archive"],
    );
    let mut bad = ents.clone();
    let wname = weights(&mut bad).name.clone();
    bad.retain(|e| e.name != wname);
    assert_refused(
        &ctx,
        "missing layer",
        &tar_build(&bad),
        &["which is not in the archive"],
    );

    // Paths that escape, links.
    for (name, flag, why) in [
        ("../evil", b'0', "escapes the archive"),
        ("blobs/../../evil", b'0', "escapes the archive"),
        ("/etc/evil", b'0', "absolute path"),
        ("blobs/sha256/evil", b'2', "symbolic link"),
        ("blobs/sha256/evil", b'1', "hard link"),
    ] {
        let mut bad = ents.clone();
        let mut e = ent(name, if flag == b'0' { b"x" } else { b"" });
        e.flag = flag;
        bad.insert(2, e);
        assert_refused(&ctx, name, &tar_build(&bad), &[why]);
    }

    // A tar bomb: a blob declaring 8 GiB with a few bytes behind it. From a
    // file (length known) it is refused before any byte is read; from a pipe,
    // when the stream ends.
    let mut bad = ents.clone();
    let mut bomb = ent(&format!("blobs/sha256/{}", "cd".repeat(32)), &[1u8; 1000]);
    bomb.declared = Some(0o77777777777);
    bad.push(bomb);
    let mut bytes = tar_build(&bad);
    bytes.truncate(bytes.len() - 1024);
    assert_refused(
        &ctx,
        "bomb",
        &bytes,
        &["declares 8589934591 bytes", "truncated"],
    );
    // A layer declaring more than its manifest says: refused at its header.
    let mut bad = ents.clone();
    let w = weights(&mut bad);
    w.data.extend_from_slice(&[0u8; 4096]);
    assert_refused(
        &ctx,
        "oversized layer",
        &tar_build(&bad),
        &["bytes in the archive but manifest"],
    );

    // Caps and shapes.
    let mut bad = ents.clone();
    set_index(
        &mut bad,
        &json!({"schemaVersion": 2, "manifests": [], "pad": "x".repeat(5 << 20)}),
    );
    assert_refused(
        &ctx,
        "huge index",
        &tar_build(&bad),
        &["more than the 4194304 allowed"],
    );
    let mut bad = ents.clone();
    bad.retain(|e| e.name != "oci-layout");
    assert_refused(
        &ctx,
        "no oci-layout",
        &tar_build(&bad),
        &["not an OCI image layout"],
    );
    let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_refused(&ctx, "not a tar", &noise, &["not a tar archive"]);

    // The daemon serves on, and the good archive still loads.
    assert!(ctx.daemon().alive());
    let file = ctx.work.join("m.tar");
    assert_ok(&load(&ctx, Some(&file), &[], &[]));
    assert_eq!(models(&ctx).len(), 1);
}

#[test]
fn a_killed_load_leaves_nothing_visible_and_no_partial_files() {
    let mut ctx = publisher();
    let file = save(&ctx, &["m"], "m.tar");
    let archive = std::fs::read(&file).unwrap();
    for m in ["m", "m2"] {
        assert_ok(&ctx.cli(&["rm", m]));
    }
    // Feed the archive up to the middle of the weights, then kill the daemon.
    let mut child = ctx
        .cli_cmd(&["load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&archive[..archive.len() * 3 / 4]).unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tmp_files(&ctx).iter().any(|f| f.ends_with(".partial")) {
        assert!(Instant::now() < deadline, "no partial blob appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    ctx.daemon().kill9();
    drop(stdin);
    let _ = child.wait();
    assert!(
        !tmp_files(&ctx).is_empty(),
        "the kill left its partial file"
    );

    ctx.start();
    assert!(models(&ctx).is_empty(), "{:?}", models(&ctx));
    assert!(tmp_files(&ctx).is_empty(), "{:?}", tmp_files(&ctx));
    assert!(ctx.blob_files().is_empty(), "{:?}", ctx.blob_files());
    // And the archive loads whole afterwards.
    assert_ok(&load(&ctx, Some(&file), &[], &[]));
    assert_eq!(models(&ctx).len(), 1);
}

#[test]
fn the_api_keeps_export_and_names_bad_requests() {
    let ctx = publisher();
    let r = ctx.post_json("/api/export", &json!({"model": "m", "format": "zip"}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("`format`"), "{}", r.text());
    let r = ctx.post_json("/api/export", &json!({"model": "m"}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("`path`"), "{}", r.text());
    let r = ctx.post_json(
        "/api/export",
        &json!({"models": ["nope"], "format": "oci-archive"}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    // The archive over raw HTTP: a tar with its exact length.
    let r = ctx.post_json(
        "/api/export",
        &json!({"models": ["m"], "format": "oci-archive"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-tar"));
    assert_eq!(
        r.header("content-length")
            .and_then(|v| v.parse::<usize>().ok()),
        Some(r.body.len())
    );
    assert_ok(&ctx.cli(&["rm", "m"]));
    let r = http::call_unix(&ctx.socket(), "POST", "/api/import?name=back:v1", &r.body).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["models"],
        json!(["registry.ollama.ai/library/back:v1"])
    );
}
