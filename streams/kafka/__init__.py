"""The embedded broker: one Apache Kafka node (KRaft), its jars resolved by Maven from
`pom.xml`, started with `server.properties` and `log4j.properties` beside this file."""
