/**
 * A protobuf wire-format reader, just enough for SentencePiece's `ModelProto` (proto2): a message
 * is read into its fields (number, wire type, value) in file order; the caller interprets them
 * by field number. Follows the protobuf encoding spec (varints, 64-bit, length-delimited, 32-bit;
 * the deprecated group wire types are refused).
 */

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_BYTES = 2;
export const WIRE_FIXED32 = 5;

export interface ProtoField {
  num: number;
  wire: number;
  /** Varint: the low 32 bits as a signed int32 (what int32/enum/bool fields mean). */
  int: number;
  /** Varint: the value as a number (exact below 2^53). */
  uint: number;
  /** Length-delimited, fixed32 and fixed64 payloads. */
  bytes: Uint8Array;
}

/** Says what is wrong and where; never returns. */
export type ProtoFail = (problem: string, at: number) => never;

const EMPTY = new Uint8Array(0);

/** The fields of one message. */
export function readMessage(buf: Uint8Array, fail: ProtoFail): ProtoField[] {
  const fields: ProtoField[] = [];
  let pos = 0;
  const varint = (): { int: number; uint: number } => {
    let int = 0;
    let uint = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= buf.length) fail('truncated varint', pos);
      if (shift >= 70) fail('varint longer than 10 bytes', pos);
      const b = buf[pos++];
      if (shift < 32) int |= (b & 0x7f) << shift;
      uint += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return { int, uint };
    }
  };
  const take = (n: number): Uint8Array => {
    if (n > buf.length - pos) fail(`a field of ${n} bytes runs past the end (${buf.length - pos} left)`, pos);
    const b = buf.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  while (pos < buf.length) {
    const keyAt = pos;
    const key = varint().uint;
    const num = Math.floor(key / 8);
    const wire = key % 8;
    if (num === 0) fail('field number 0', keyAt);
    if (wire === WIRE_VARINT) fields.push({ num, wire, ...varint(), bytes: EMPTY });
    else if (wire === WIRE_FIXED64) fields.push({ num, wire, int: 0, uint: 0, bytes: take(8) });
    else if (wire === WIRE_BYTES) fields.push({ num, wire, int: 0, uint: 0, bytes: take(varint().uint) });
    else if (wire === WIRE_FIXED32) fields.push({ num, wire, int: 0, uint: 0, bytes: take(4) });
    else fail(`wire type ${wire}`, keyAt);
  }
  return fields;
}

/** A fixed32 field as a little-endian float. */
export function float32Of(field: ProtoField): number {
  return new DataView(field.bytes.buffer, field.bytes.byteOffset, 4).getFloat32(0, true);
}

/** A string field (UTF-8; protobuf strings must be valid, invalid bytes become U+FFFD). */
export function stringOf(field: ProtoField): string {
  return Buffer.from(field.bytes.buffer, field.bytes.byteOffset, field.bytes.byteLength).toString('utf8');
}
