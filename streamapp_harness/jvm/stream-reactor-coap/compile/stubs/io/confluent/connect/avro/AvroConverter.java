// streamapp's, not stream-reactor's: a compile-only stand-in for Confluent's class, which Maven Central does not
// serve (io.confluent lives on packages.confluent.io). Type-checking the sink, scalac reads kafka-connect-common
// 1.1.7's ConverterUtil, whose members have this type; without it scalac stops with "Symbol 'term io.confluent'
// is missing from the classpath". Compiled by javac onto scalac's classpath only and never packaged: the jar
// holds no io.confluent class (the release's build excluded io.confluent too), and the CoAP sink never loads it.
package io.confluent.connect.avro;

/** Compile-time stand-in only (never packaged): kafka-connect-common's ConverterUtil names this type. */
public abstract class AvroConverter implements org.apache.kafka.connect.storage.Converter {}
