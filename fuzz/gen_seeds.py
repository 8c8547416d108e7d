#!/usr/bin/env python3
"""Regenerates fuzz/fixtures/jwks.json and the seed corpora (needs python3-cryptography).

The private keys live only in this process: the committed fixture holds public keys, and the
seed tokens signed here are the only inputs that verify against it.
"""
import base64, json, os, pathlib
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

HERE = pathlib.Path(__file__).resolve().parent
ISS, AUD = "https://idp.fuzz", "https://api.fuzz"


def b64(b):
    if isinstance(b, str):
        b = b.encode()
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def uint(n, size=None):
    return n.to_bytes(size or (n.bit_length() + 7) // 8, "big")


rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
p256 = ec.generate_private_key(ec.SECP256R1())
p384 = ec.generate_private_key(ec.SECP384R1())
ed = ed25519.Ed25519PrivateKey.generate()


def rsa_jwk(k, **extra):
    pub = k.public_key().public_numbers()
    return {"kty": "RSA", "n": b64(uint(pub.n)), "e": b64(uint(pub.e)), **extra}


def ec_jwk(k, crv, size, **extra):
    pub = k.public_key().public_numbers()
    return {"kty": "EC", "crv": crv, "x": b64(uint(pub.x, size)), "y": b64(uint(pub.y, size)), **extra}


ed_x = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
keys = [
    rsa_jwk(rsa_key, kid="rsa-1", use="sig", alg="RS256"),
    rsa_jwk(rsa_key, kid="rsa-pss", use="sig", alg="PS256"),
    ec_jwk(p256, "P-256", 32, kid="ec-256", use="sig", alg="ES256"),
    ec_jwk(p384, "P-384", 48, kid="ec-384", use="sig", alg="ES384"),
    {"kty": "OKP", "crv": "Ed25519", "x": b64(ed_x), "kid": "ed-1", "use": "sig", "alg": "EdDSA"},
    rsa_jwk(rsa_key),  # no kid, no alg: every allowed RSA algorithm
    ec_jwk(p256, "P-256", 32, kid="enc-1", use="enc"),
    {"kty": "oct", "k": b64(b"secret"), "kid": "hmac"},
]
jwks = {"keys": keys}
(HERE / "fixtures" / "jwks.json").write_text(json.dumps(jwks, indent=1) + "\n")


def sign(alg, data):
    if alg == "RS256":
        return rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if alg == "PS256":
        return rsa_key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    if alg in ("ES256", "ES384"):
        key, size, h = (p256, 32, hashes.SHA256()) if alg == "ES256" else (p384, 48, hashes.SHA384())
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(h)))
        return uint(r, size) + uint(s, size)
    if alg == "EdDSA":
        return ed.sign(data)
    return b"sig"


def token(header, claims, alg=None, sig=None):
    h = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    c = claims if isinstance(claims, str) else json.dumps(claims, separators=(",", ":"))
    inp = f"{b64(h)}.{b64(c)}"
    s = sig if sig is not None else sign(alg or json.loads(h).get("alg", ""), inp.encode())
    return f"{inp}.{b64(s)}"


claims = {"iss": ISS, "aud": AUD, "sub": "alice", "scope": "read", "iat": 1700000000,
          "nbf": 1700000000, "exp": 4102444800, "jti": "j1"}


def write(target, name, data):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# --- token: raw compact tokens, and `header \0 claims \0 signature` (encoded by the target)
for alg, kid in [("RS256", "rsa-1"), ("PS256", "rsa-pss"), ("ES256", "ec-256"), ("ES384", "ec-384"),
                 ("EdDSA", "ed-1"), ("RS256", None)]:
    h = {"alg": alg, "typ": "at+jwt"}
    if kid:
        h["kid"] = kid
    write("token", f"valid-{alg}-{kid or 'nokid'}", token(h, claims))
write("token", "alg-none", token({"alg": "none"}, claims, sig=b""))
write("token", "hs256", token({"alg": "HS256", "kid": "rsa-1"}, claims, sig=b"x" * 32))
write("token", "crit", token({"alg": "ES256", "kid": "ec-256", "crit": ["exp"], "exp": 1}, claims))
write("token", "b64-false", token({"alg": "ES256", "b64": False, "crit": ["b64"]}, claims))
write("token", "nested", token({"alg": "ES256", "cty": "JWT"}, claims))
write("token", "jku", token({"alg": "ES256", "kid": "ec-256", "jku": "https://evil/jwks", "jwk": {"kty": "EC"}}, claims))
write("token", "jwe", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d")
write("token", "dup-claims", token({"alg": "ES256"}, '{"iss":"https://idp.fuzz","sub":"a","sub":"b"}'))
write("token", "exp-string", token({"alg": "ES256", "kid": "ec-256"}, {**claims, "exp": "4102444800"}))
write("token", "aud-array", token({"alg": "EdDSA", "kid": "ed-1"}, {**claims, "aud": ["x", AUD], "exp": 4102444800.5}))
write("token", "enc-key", token({"alg": "ES256", "kid": "enc-1"}, claims))
write("token", "structured-es256", json.dumps({"alg": "ES256", "kid": "ec-256"}) + "\0" + json.dumps(claims) + "\0" + "s" * 64)
write("token", "structured-rs256", json.dumps({"alg": "RS256"}) + "\0" + json.dumps({**claims, "nbf": 1.5e9, "iat": 1}) + "\0" + "s" * 256)

# --- jwks
write("jwks", "fixture.json", json.dumps(jwks))
write("jwks", "empty.json", '{"keys":[]}')
write("jwks", "padded-leading-zero.json", json.dumps({"keys": [rsa_jwk(rsa_key, kid="z") | {"n": base64.urlsafe_b64encode(b"\0" + uint(rsa_key.public_key().public_numbers().n)).decode()}]}))
write("jwks", "key-ops.json", json.dumps({"keys": [ec_jwk(p256, "P-256", 32, kid="a", key_ops=["verify"]), ec_jwk(p384, "P-384", 48, kid="b", key_ops=["sign"])]}))
write("jwks", "mismatch.json", json.dumps({"keys": [ec_jwk(p256, "P-256", 32, kid="a", alg="ES384"), rsa_jwk(rsa_key, alg="EdDSA"), {"kty": "OKP", "crv": "X25519", "x": b64(ed_x)}, {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}))
write("jwks", "small-rsa.json", json.dumps({"keys": [{"kty": "RSA", "n": b64(b"\xc3" * 128), "e": "AQAB"}]}))
write("jwks", "too-many.json", json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64(ed_x), "kid": str(i)} for i in range(102)]}))

# --- discovery metadata (the target expects issuer https://idp.fuzz)
write("discovery", "oidc.json", json.dumps({"issuer": ISS, "jwks_uri": ISS + "/jwks", "token_endpoint": ISS + "/token", "id_token_signing_alg_values_supported": ["RS256"]}))
write("discovery", "http-jwks.json", json.dumps({"issuer": ISS, "jwks_uri": "http://idp.fuzz/jwks"}))
write("discovery", "loopback-jwks.json", json.dumps({"issuer": ISS, "jwks_uri": "http://127.0.0.1:8080/jwks"}))
write("discovery", "issuer-mismatch.json", json.dumps({"issuer": ISS + "/", "jwks_uri": ISS + "/jwks"}))
write("discovery", "no-jwks.json", json.dumps({"issuer": ISS}))
write("discovery", "file-scheme.json", json.dumps({"issuer": ISS, "jwks_uri": "file:///etc/passwd"}))

# --- config
write("config", "minimal.yaml", "issuers:\n- issuer: https://idp.example\n  audiences: [api]\n")
write("config", "full.yaml", """listen:
  grpc: 0.0.0.0:9191
  admin: 127.0.0.1:9090
realm: jwt-authz
drain_timeout: 10s
upstream_headers:
  subject: x-jwt-sub
  issuer: x-jwt-iss
issuers:
  - issuer: https://idp.example.com/realms/demo
    audiences: [https://api.example.com, other]
    discovery_url: https://idp.example.com/realms/demo/.well-known/openid-configuration
    algorithms: [RS256, PS256, ES256, ES384, EdDSA]
    leeway: 60s
    refresh_interval: 5m
    unknown_kid_cooldown: 10s
    max_wait: 5s
    max_stale: 24h
    connect_timeout: 2s
    request_timeout: 5s
    max_response_bytes: 1048576
  - issuer: http://127.0.0.1:8080
    audiences: [a]
    jwks_uri: http://127.0.0.1:8080/jwks
    allow_insecure_http: true
""")
write("config", "inline-jwks.yaml", "issuers:\n- issuer: https://idp.example\n  audiences: [api]\n  jwks_inline: " + json.dumps({"keys": keys[4:5]}) + "\n")
write("config", "anchors.yaml", "a: &a [x, x]\nissuers:\n- issuer: https://idp.example\n  audiences: *a\n")
write("config", "bad-alg.yaml", "issuers:\n- issuer: http://idp.example\n  audiences: [api]\n  algorithms: [HS256, none]\n")

# --- bearer (the Authorization header value)
for name, v in [("plain", "Bearer " + token({"alg": "ES256", "kid": "ec-256"}, claims)), ("lower", "bearer abc.def.ghi"),
                ("spaces", "BEARER    abc   "), ("basic", "Basic dXNlcjpwdw=="), ("two", "Bearer a,Bearer b"),
                ("padding", "Bearer abc=="), ("empty", "Bearer "), ("bare", "Bearer"), ("tab", "Bearer\tabc"),
                ("unicode", "Bearer \u00e9t\u00e9")]:
    write("bearer", name, v)
