"""`orgstream console`: the operations console, server-rendered pages over the store and Kafka
(docs/console.md)."""
