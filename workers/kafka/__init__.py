"""Kafka beyond the consumer loop: offsets, lag, the dead-letter topic, rewind, the one producer."""
