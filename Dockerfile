# The server as a container image: the static Linux binary of scripts/dist.sh, alone.
#
#   scripts/dist.sh x86_64-unknown-linux-musl && docker build -t sipgateio-callevents .
#   scripts/dist.sh aarch64-unknown-linux-musl && docker build --platform linux/arm64 -t sipgateio-callevents .
#
# The binary comes from dist/ by the platform built for: dist.sh leaves the one of
# x86_64-unknown-linux-musl in dist/linux-amd64/ and of aarch64-unknown-linux-musl in
# dist/linux-arm64/, named by Docker's TARGETARCH, which BuildKit and buildah set. (One
# stage per architecture, picked by `FROM binary-${TARGETARCH}`, would say the mapping
# here, but buildah before 1.33 looks such a stage up as an image on a registry.)
FROM scratch
ARG TARGETARCH
COPY dist/linux-${TARGETARCH}/sipgateio-callevents /sipgateio-callevents
# Nothing else is needed inside: the binary is static, carries sipgate's key, and reads
# TIMEZONE from the time-zone database compiled into it; it makes no TLS connections.
LABEL org.opencontainers.image.title="sipgateio-callevents" \
      org.opencontainers.image.description="Receives sipgate.io call-event webhooks and answers them" \
      org.opencontainers.image.licenses="Unlicense"
# Inside a container, a published port arrives on the container's own interface, not its
# loopback, so the server listens on all of them; publish it on the host's loopback only,
# with the reverse proxy in front (docs/deployment.md).
ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
# Any user will do: the server writes no files and 8080 is not a privileged port. 65532
# is the "nonroot" user of the distroless images, so a mounted rules file reads alike in
# either base.
USER 65532:65532
# Exec form, as the image has no shell: `health` asks GET /health over the loopback and
# exits 0 or 1.
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
  CMD ["/sipgateio-callevents", "health"]
ENTRYPOINT ["/sipgateio-callevents"]
