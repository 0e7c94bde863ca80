/**
 * The tokenizer contract every part of the engine uses: the built-in GPT-2 BPE (gpt2.ts), Hugging
 * Face byte-level BPE files (hf.ts), tiktoken pickles (tiktoken.ts) and SentencePiece models
 * (sentencepiece.ts) all implement it, so analysis, training and transport never ask which one
 * they hold.
 *
 * Offsets follow gpt2.ts: `[start, end)` in UTF-16 code units of the ORIGINAL text (before any
 * normalisation), tokens tile the text exactly (token i ends where token i+1 starts, the first
 * starts at `baseOffset`, the last ends at `baseOffset + text.length`), and a character belongs to
 * the token that holds its first byte (its first normalised piece). Tokens that hold no character
 * of their own (the trailing bytes of a split emoji, a dummy-prefix "▁") get an empty range.
 */
import type { TokenInfo } from '../protocol';

export type TokenizerKind = 'gpt2' | 'hf-bpe' | 'tiktoken' | 'sentencepiece';

export interface Tokenizer {
  readonly kind: TokenizerKind;
  /** Where it came from, for people: a file path, or "GPT-2 (built in)". */
  readonly name: string;
  /** Ids are in [0, vocabSize). */
  readonly vocabSize: number;
  /** Ids of `text` as the model was trained on it: no BOS/EOS added, special-token text is plain text. */
  encode(text: string): number[];
  /** The same ids with their offsets into `text`, shifted by `baseOffset`. */
  tokenize(text: string, baseOffset?: number): TokenInfo[];
  /** Text of `ids` as the tokenizer's own decoder gives it; ids outside the vocabulary → BadInputError. */
  decode(ids: number[]): string;
  /** Display text of one token (a partial UTF-8 character shows as U+FFFD). */
  tokenText(id: number): string;
  /** UTF-8 bytes of text the token stands for (bits per byte); 0 for special and control tokens. */
  tokenBytes(id: number): number;
  readonly bosId?: number;
  readonly eosId?: number;
  /** Special / control ids (never produced by `encode`). */
  readonly specialIds: ReadonlySet<number>;
}
