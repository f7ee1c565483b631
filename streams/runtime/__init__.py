"""What a worker runs on besides its stages: the Faust Kafka transport, the table store, the
registry reader and the urgent lane's read-ahead."""
