"""Collectors: turn queue-runner status JSON, Prometheus text and journals into tidy samples."""
