# syntax=docker/dockerfile:1
#
# jwt-authz container image: one static (musl) binary on distroless/static, which adds CA certificates
# (for HTTPS to the OpenID Providers), tzdata and an /etc/passwd entry for uid 65532 — no shell, no
# package manager. Runs as 65532:65532 and writes nothing, so a read-only root filesystem works.
#
#   docker build -t jwt-authz:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# The binary comes from scripts/build-static, which CI runs too: both build it with
#   cargo build --release --locked --target x86_64-unknown-linux-musl

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# musl-tools follows the base image's Debian release; pinning its exact version would only break builds.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
# .dockerignore lets in only what the build reads: Cargo.toml, Cargo.lock, build.rs, proto/, src/,
# benches/ (declared in Cargo.toml) and scripts/build-static.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    scripts/build-static \
 && cp target/x86_64-unknown-linux-musl/release/jwt-authz /jwt-authz

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="jwt-authz" \
      org.opencontainers.image.description="Envoy ext_authz gRPC service that validates JWT access tokens against discovered JWKS" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /jwt-authz /jwt-authz
USER 65532:65532
# 9191 ext_authz gRPC + gRPC health, 9090 admin (/metrics, /healthz, /readyz),
# 8080 the HTTP front end (forward auth / reverse proxy) when configured.
EXPOSE 9191 9090 9292 8080
ENTRYPOINT ["/jwt-authz"]
CMD ["serve", "--config", "/etc/jwt-authz/config.yaml"]
