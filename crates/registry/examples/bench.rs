//! A small load generator for docs/benchmarks.md: push/pull throughput and small-request rate
//! against any OCI registry, with server CPU time per request from /proc/<pid>/stat.
//!
//! `bench --url https://127.0.0.1:5000 --pid PID [--ca ca.crt] [--user U --pass P] [--token]
//!        [--mib 100] [--requests 20000]`
//!
//! Plain HTTP/1.1 over persistent connections (std + rustls), so the client costs little.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use palisade_image::digest::Digest;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Clone)]
struct Opts {
    host: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    auth: Option<String>,
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

struct Conn {
    io: BufReader<Box<dyn Stream>>,
    opts: Opts,
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, n: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn open(opts: &Opts) -> Res<Self> {
        let tcp = TcpStream::connect(&opts.host)?;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Stream> = match &opts.tls {
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from(
                    opts.host
                        .split(':')
                        .next()
                        .unwrap_or("127.0.0.1")
                        .to_owned(),
                )?;
                Box::new(rustls::StreamOwned::new(
                    rustls::ClientConnection::new(Arc::clone(cfg), name)?,
                    tcp,
                ))
            }
            None => Box::new(tcp),
        };
        Ok(Self {
            io: BufReader::with_capacity(1 << 16, io),
            opts: opts.clone(),
        })
    }

    /// Sends a request; `sink` discards the body instead of keeping it.
    fn req(&mut self, method: &str, path: &str, body: &[u8], sink: bool) -> Res<Resp> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.opts.host,
            body.len()
        );
        if let Some(a) = &self.opts.auth {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        if path.contains("/manifests/") {
            head.push_str("Accept: application/vnd.oci.image.manifest.v1+json\r\n");
        }
        if !body.is_empty() {
            head.push_str("Content-Type: application/octet-stream\r\n");
        }
        head.push_str("\r\n");
        let w = self.io.get_mut();
        w.write_all(head.as_bytes())?;
        w.write_all(body)?;
        w.flush()?;
        let mut line = String::new();
        self.io.read_line(&mut line)?;
        let status: u16 = line.split_whitespace().nth(1).ok_or("no status")?.parse()?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.io.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let mut r = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if method != "HEAD" {
            let len: u64 = r
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if sink {
                std::io::copy(&mut (&mut self.io).take(len), &mut std::io::sink())?;
            } else {
                (&mut self.io).take(len).read_to_end(&mut r.body)?;
            }
        }
        Ok(r)
    }

    fn push_blob(&mut self, repo: &str, data: &[u8]) -> Res<Digest> {
        self.push_blob_as(repo, data, Digest::of(data))
    }

    fn push_blob_as(&mut self, repo: &str, data: &[u8], d: Digest) -> Res<Digest> {
        let r = self.req("POST", &format!("/v2/{repo}/blobs/uploads/"), b"", false)?;
        let loc = r.header("location").ok_or_else(|| {
            format!(
                "POST upload: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
        })?;
        let path = loc
            .find("/v2/")
            .map(|i| loc[i..].to_owned())
            .ok_or("bad location")?;
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = self.req("PUT", &format!("{path}{sep}digest={d}"), data, false)?;
        if r.status != 201 {
            return Err(format!(
                "PUT blob: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
            .into());
        }
        Ok(d)
    }
}

fn cpu_ticks(pid: u32) -> Res<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &s[s.rfind(')').ok_or("bad stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?) // utime + stime (fields 14, 15)
}

fn parallel<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> Res<T> + Send + Sync + 'static,
) -> Res<Vec<T>> {
    let f = Arc::new(f);
    let hs: Vec<_> = (0..n)
        .map(|i| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || f(i))
        })
        .collect();
    hs.into_iter()
        .map(|h| h.join().map_err(|_| "thread panicked")?)
        .collect()
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").ok_or("--url required")?;
    let pid: u32 = arg(&args, "--pid").ok_or("--pid required")?.parse()?;
    let mib: usize = arg(&args, "--mib").map_or(Ok(100), |s| s.parse())?;
    let requests: usize = arg(&args, "--requests").map_or(Ok(20000), |s| s.parse())?;
    let repo = arg(&args, "--repo").unwrap_or_else(|| "bench/app".into());
    let label = arg(&args, "--label").unwrap_or_default();
    let (tls, host) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(h), _) => {
            let mut roots = rustls::RootCertStore::empty();
            let ca = std::fs::read(arg(&args, "--ca").ok_or("--ca required for https")?)?;
            for c in rustls_pemfile::certs(&mut ca.as_slice()) {
                roots.add(c?)?;
            }
            let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
            (Some(Arc::new(cfg)), h.to_owned())
        }
        (_, Some(h)) => (None, h.to_owned()),
        _ => return Err("--url must be http:// or https://".into()),
    };
    let mut opts = Opts {
        host,
        tls,
        auth: None,
    };
    if let (Some(u), Some(p)) = (arg(&args, "--user"), arg(&args, "--pass")) {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        );
        if args.iter().any(|a| a == "--token") {
            opts.auth = Some(basic);
            let mut c = Conn::open(&opts)?;
            let r = c.req(
                "GET",
                &format!(
                    "/token?service={}&scope=repository:{repo}:pull,push",
                    opts.host
                ),
                b"",
                false,
            )?;
            let v: serde_json::Value = serde_json::from_slice(&r.body)?;
            opts.auth = Some(format!("Bearer {}", v["token"].as_str().ok_or("no token")?));
        } else {
            opts.auth = Some(basic);
        }
    }

    // the manifest the small requests ask for
    let mut c = Conn::open(&opts)?;
    let cfg = c.push_blob(&repo, b"{}")?;
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.to_string(), "size": 2}, "layers": []});
    let mb = serde_json::to_vec(&manifest)?;
    let path = format!("/v2/{repo}/manifests/latest");
    let head = format!(
        "{}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json",
        path
    );
    let _ = head;
    {
        // PUT with the manifest media type
        let mut h = format!("PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n", opts.host, mb.len());
        if let Some(a) = &opts.auth {
            h.push_str(&format!("Authorization: {a}\r\n"));
        }
        h.push_str("\r\n");
        let mut c2 = Conn::open(&opts)?;
        let w = c2.io.get_mut();
        w.write_all(h.as_bytes())?;
        w.write_all(&mb)?;
        let mut line = String::new();
        c2.io.read_line(&mut line)?;
        if !line.contains(" 201 ") {
            return Err(format!("manifest PUT: {line}").into());
        }
    }

    // throughput: `mib` MiB in 4 layers, 1 and 4 connections
    let layer_len = mib * 1024 * 1024 / 4;
    for conns in [1usize, 4] {
        let layers: Vec<Vec<u8>> = (0..4)
            .map(|i| {
                let mut v = vec![0u8; layer_len];
                let mut x: u64 =
                    0x9E3779B97F4A7C15 ^ ((conns * 16 + i) as u64) ^ std::process::id() as u64;
                for chunk in v.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
                }
                v
            })
            .collect();
        let sums: Arc<Vec<Digest>> = Arc::new(layers.iter().map(|l| Digest::of(l)).collect());
        let layers = Arc::new(layers);
        let t0 = Instant::now();
        let c0 = cpu_ticks(pid)?;
        let (o, r, l, ds) = (
            opts.clone(),
            repo.clone(),
            Arc::clone(&layers),
            Arc::clone(&sums),
        );
        let digests: Vec<Vec<Digest>> = parallel(conns, move |i| {
            let mut c = Conn::open(&o)?;
            (i..4)
                .step_by(conns)
                .map(|k| c.push_blob_as(&r, &l[k], ds[k].clone()))
                .collect()
        })?;
        let push_s = t0.elapsed().as_secs_f64();
        let push_cpu = (cpu_ticks(pid)? - c0) as f64 / 100.0;
        let all: Arc<Vec<Digest>> = Arc::new(digests.into_iter().flatten().collect());
        let t0 = Instant::now();
        let c0 = cpu_ticks(pid)?;
        let (o, r, a) = (opts.clone(), repo.clone(), Arc::clone(&all));
        parallel(conns, move |i| {
            let mut c = Conn::open(&o)?;
            for d in a.iter().skip(i).step_by(conns) {
                let resp = c.req("GET", &format!("/v2/{r}/blobs/{d}"), b"", true)?;
                if resp.status != 200 {
                    return Err(format!("GET blob {}", resp.status).into());
                }
            }
            Ok(())
        })?;
        let pull_s = t0.elapsed().as_secs_f64();
        let pull_cpu = (cpu_ticks(pid)? - c0) as f64 / 100.0;
        let total = (layer_len * 4) as f64 / (1024.0 * 1024.0);
        println!(
            "{label}\tpush\t{conns} conn\t{:.0} MiB/s\tserver CPU {push_cpu:.2} s",
            total / push_s
        );
        println!(
            "{label}\tpull\t{conns} conn\t{:.0} MiB/s\tserver CPU {pull_cpu:.2} s",
            total / pull_s
        );
    }

    // small requests over 2 keep-alive connections
    for (method, p) in [("HEAD", path.clone()), ("GET", "/v2/".to_owned())] {
        let conns = 2;
        let per = requests / conns;
        let c0 = cpu_ticks(pid)?;
        let t0 = Instant::now();
        let (o, p2, m) = (opts.clone(), p.clone(), method);
        parallel(conns, move |_| {
            let mut c = Conn::open(&o)?;
            for _ in 0..per {
                let r = c.req(m, &p2, b"", true)?;
                if r.status != 200 {
                    return Err(format!("{m} {p2}: {}", r.status).into());
                }
            }
            Ok(())
        })?;
        let secs = t0.elapsed().as_secs_f64();
        let cpu = (cpu_ticks(pid)? - c0) as f64 / 100.0;
        let n = (per * conns) as f64;
        println!(
            "{label}\t{method} {p}\t{:.0} req/s\tserver CPU {:.3} ms/req",
            n / secs,
            cpu * 1000.0 / n
        );
    }
    Ok(())
}
