//! Image references against a corpus modelled on Docker's own reference tests
//! (distribution/reference): what normalises to what, and what is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use palisade_image::ImageReference;

const DIGEST: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

#[test]
fn valid_references_normalise_like_docker() {
    let cases: Vec<(String, String)> = [
        ("test_com", "docker.io/library/test_com:latest"),
        ("test.com:tag", "docker.io/library/test.com:tag"),
        ("test.com:5000", "docker.io/library/test.com:5000"),
        ("test.com/repo:tag", "test.com/repo:tag"),
        ("test:5000/repo", "test:5000/repo:latest"),
        ("test:5000/repo:tag", "test:5000/repo:tag"),
        (
            "lowercase:Uppercase",
            "docker.io/library/lowercase:Uppercase",
        ),
        (
            "sub-dom1.foo.com/bar/baz/quux",
            "sub-dom1.foo.com/bar/baz/quux:latest",
        ),
        (
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        ),
        (
            "b.gcr.io/test.example.com/my-app:test.example.com",
            "b.gcr.io/test.example.com/my-app:test.example.com",
        ),
        (
            "xn--n3h.com/myimage:xn--n3h.com",
            "xn--n3h.com/myimage:xn--n3h.com",
        ),
        ("foo_bar.com:8080", "docker.io/library/foo_bar.com:8080"),
        ("foo/foo_bar.com:8080", "docker.io/foo/foo_bar.com:8080"),
        ("192.168.1.1/repo", "192.168.1.1/repo:latest"),
        ("192.168.1.1:5000/repo", "192.168.1.1:5000/repo:latest"),
        ("[2001:db8::1]/repo", "[2001:db8::1]/repo:latest"),
        ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000/repo:tag"),
        ("[::1]:5000/repo", "[::1]:5000/repo:latest"),
        ("localhost/repo", "localhost/repo:latest"),
        ("localhost:5000/repo", "localhost:5000/repo:latest"),
        ("a/b/c/d/e/f", "docker.io/a/b/c/d/e/f:latest"),
        ("a__b-c--d.e_f", "docker.io/library/a__b-c--d.e_f:latest"),
        (
            "index.docker.io/library/ubuntu:22.04",
            "docker.io/library/ubuntu:22.04",
        ),
        ("docker.io/ubuntu", "docker.io/library/ubuntu:latest"),
        (
            "Docker.io/library/ubuntu",
            "Docker.io/library/ubuntu:latest",
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .chain([
        (
            format!("busybox@{DIGEST}"),
            format!("docker.io/library/busybox@{DIGEST}"),
        ),
        (
            format!("busybox:1.36@{DIGEST}"),
            format!("docker.io/library/busybox:1.36@{DIGEST}"),
        ),
        (
            format!("localhost:5000/a/b:tag@{DIGEST}"),
            format!("localhost:5000/a/b:tag@{DIGEST}"),
        ),
        (
            format!("a:{}", "t".repeat(128)),
            format!("docker.io/library/a:{}", "t".repeat(128)),
        ),
    ])
    .collect();
    for (input, want) in cases {
        let parsed = ImageReference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(parsed.to_string(), want, "{input}");
        // The normalised form and the familiar form parse back to the same reference.
        assert_eq!(ImageReference::parse(&parsed.to_string()).unwrap(), parsed);
        assert_eq!(
            ImageReference::parse(&parsed.familiar()).unwrap(),
            parsed,
            "{input}"
        );
    }
}

#[test]
fn accessors_split_the_parts() {
    let r = ImageReference::parse(&format!("localhost:5000/team/app:v2@{DIGEST}")).unwrap();
    assert_eq!(r.domain(), "localhost:5000");
    assert_eq!(r.path(), "team/app");
    assert_eq!(r.repository(), "localhost:5000/team/app");
    assert_eq!(r.tag(), Some("v2"));
    assert_eq!(r.digest().unwrap().to_string(), DIGEST);
    let official = ImageReference::parse("busybox").unwrap();
    assert_eq!(official.familiar(), "busybox:latest");
    assert_eq!(official.familiar_repository(), "busybox");
}

#[test]
fn invalid_references_are_refused() {
    let too_long_name = format!("{}/{}", "a".repeat(128), "b".repeat(128));
    let cases: Vec<String> = [
        "",
        ":justtag",
        "@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "Uppercase:tag",
        "test:5000/Uppercase/lowercase:tag",
        "aa/asdf$$^/aa",
        "repo:-tag",
        "repo:.tag",
        "repo:tag with space",
        "a//b",
        "a/",
        "/a",
        "-a",
        "a-",
        "a..b",
        "a___b",
        "a:b:c",
        "[fe80::1%eth0]:5000/repo",
        "[2001:db8::1]:port/repo",
        "host:/repo",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([
        too_long_name,
        format!("a:{}", "t".repeat(129)),
        format!("a@{}", DIGEST.to_uppercase()),
    ])
    .collect();
    for input in cases {
        assert!(
            ImageReference::parse(&input).is_err(),
            "{input:?} should be refused"
        );
    }
}

#[test]
fn error_messages_say_what_is_wrong() {
    let message = |input: &str| ImageReference::parse(input).unwrap_err().to_string();
    assert!(message("Busybox").contains("must be lowercase"));
    assert!(message("busybox:-x").contains("invalid tag"));
    assert!(message("busybox@sha256:abc").contains("bad digest"));
    assert!(message(&"a/b".repeat(100)).contains("the limit is 255"));
}
