// streamapp's, not stream-reactor's: a compile-only stand-in for Confluent's class (see AvroConverter.java).
package io.confluent.connect.avro;

/** Compile-time stand-in only (never packaged): kafka-connect-common's ConverterUtil names this type. */
public class AvroData {}
