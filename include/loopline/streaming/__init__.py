"""Real-time scoring on Kafka: consumers, their deployment and scaling."""
