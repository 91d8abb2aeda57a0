"""Operations: health, readiness, metrics, logs (contract section 9)."""
