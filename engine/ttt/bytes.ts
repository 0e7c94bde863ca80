/**
 * Bytes credited to each scored token, for bits per byte. For SentencePiece models this is the
 * parameter-golf record's rule (train_gpt.py `build_sentencepiece_luts` and `_accumulate_bpb`,
 * shared/research/paramgolf.md §3.3): target y after token x is credited
 * `base_bytes[y] + (has_leading_space[y] && !is_boundary[x])` — the leading "▁" is a byte only
 * when the token before it is not a control/unknown/unused one, so a predicted BOS costs NLL and
 * adds nothing. Other tokenizers count the target's own UTF-8 bytes.
 */
import type { Tokenizer } from '../tokenizers/types';
import type { SentencePieceTokenizer } from '../tokenizers/sentencepiece';

/** The record's three lookup tables over the vocabulary. */
export interface ByteTable {
  baseBytes: Int32Array;
  hasLeadingSpace: Uint8Array;
  isBoundary: Uint8Array;
}

/** Bytes credited to `target` predicted after `prev`. */
export type ByteCounter = (prev: number, target: number) => number;

function isSentencePiece(t: Tokenizer): t is SentencePieceTokenizer {
  return t.kind === 'sentencepiece' && typeof (t as Partial<SentencePieceTokenizer>).bytesOf === 'function';
}

/**
 * build_sentencepiece_luts over max(tokenizer vocab, model vocab): ids past the tokenizer's
 * vocabulary are boundaries with no bytes, as theirs (their tables start as 0 / false / true).
 */
export function sentencePieceByteTable(t: SentencePieceTokenizer, modelVocab: number): ByteTable {
  const n = Math.max(t.vocabSize, modelVocab);
  const table: ByteTable = { baseBytes: new Int32Array(n), hasLeadingSpace: new Uint8Array(n), isBoundary: new Uint8Array(n).fill(1) };
  for (let id = 0; id < t.vocabSize; id++) {
    table.baseBytes[id] = t.bytesOf(id);
    table.hasLeadingSpace[id] = t.hasLeadingSpace(id) ? 1 : 0;
    table.isBoundary[id] = t.isBoundary(id) ? 1 : 0;
  }
  return table;
}

export function tableCounter(table: ByteTable): ByteCounter {
  return (prev, target) => table.baseBytes[target] + (table.hasLeadingSpace[target] && !table.isBoundary[prev] ? 1 : 0);
}

/** The record's rule for SentencePiece models, the target's own bytes for every other tokenizer. */
export function byteCounterFor(t: Tokenizer, modelVocab: number): ByteCounter {
  if (isSentencePiece(t)) return tableCounter(sentencePieceByteTable(t, modelVocab));
  return (_prev, target) => (target < t.vocabSize ? t.tokenBytes(target) : 0);
}
