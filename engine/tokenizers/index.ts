/**
 * Which tokenizer a model uses: the one saved beside its checkpoint, else GPT-2's.
 *
 * Looked for in the checkpoint's folder (a file path: its folder), then in a `tokenizer/` or
 * `tokenizers/` subfolder there, in this order: `tokenizer.json` (Hugging Face), `vocab.json` +
 * `merges.txt` (older Hugging Face), `tokenizer.pkl` (tiktoken, autoresearch), `*.model`
 * (SentencePiece; `tokenizer.model` first). The first that loads wins; if every one found is
 * refused, the first refusal is the error (a model must not silently get GPT-2's ids). This
 * module knows file names only, nothing about model families.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BadInputError } from '../errors';
import type { Tokenizer } from './types';
import { gpt2Tokenizer } from './gpt2';
import { loadHfTokenizer } from './hf';
import { loadTiktokenPickle } from './tiktoken';
import { loadSentencePiece } from './sentencepiece';

export type { Tokenizer, TokenizerKind } from './types';

export interface LoadedTokenizer {
  tokenizer: Tokenizer;
  /** The file it was read from; null for the built-in GPT-2. */
  file: string | null;
  /** One line for `headlens info`. */
  description: string;
  /** Tokenizer files found and refused before this one, one line each. */
  skipped: string[];
}

interface Candidate {
  file: string;
  load: (file: string) => Tokenizer;
}

const SUBFOLDERS = ['', 'tokenizer', 'tokenizers'];

/**
 * The tokenizer for the checkpoint at `modelPathOrFolder`. `hint`: a tokenizer file or folder
 * given explicitly (a setting or CLI flag); then nothing else is looked for.
 */
export function loadTokenizerFor(modelPathOrFolder: string, hint?: string): LoadedTokenizer {
  if (hint !== undefined) {
    const candidates = isFolder(hint) ? candidatesIn(hint, undefined) : [candidateForFile(hint)];
    if (!candidates.length) throw new BadInputError(`${hint}: no tokenizer file in this folder (tokenizer.json, vocab.json + merges.txt, tokenizer.pkl or *.model)`);
    return loadFirst(candidates);
  }
  const folder = isFolder(modelPathOrFolder) ? modelPathOrFolder : path.dirname(modelPathOrFolder);
  const candidates = SUBFOLDERS.flatMap((sub) => candidatesIn(path.join(folder, sub), modelPathOrFolder));
  if (!candidates.length) {
    return { tokenizer: gpt2Tokenizer(), file: null, description: 'GPT-2 (r50k_base, built in): no tokenizer file beside the model', skipped: [] };
  }
  return loadFirst(candidates);
}

function loadFirst(candidates: Candidate[]): LoadedTokenizer {
  const refusals: BadInputError[] = [];
  for (const c of candidates) {
    try {
      const tokenizer = c.load(c.file);
      return { tokenizer, file: c.file, description: `${tokenizer.kind} tokenizer from ${c.file} (${tokenizer.vocabSize} ids)`, skipped: refusals.map((e) => e.message) };
    } catch (e) {
      if (!(e instanceof BadInputError)) throw e;
      refusals.push(e);
    }
  }
  throw refusals[0];
}

/** Tokenizer files in `folder`, in the order they are tried; `exclude` is the checkpoint itself. */
function candidatesIn(folder: string, exclude: string | undefined): Candidate[] {
  let names: string[];
  try {
    names = fs.readdirSync(folder);
  } catch {
    return [];
  }
  const has = (name: string): boolean => names.includes(name);
  const out: Candidate[] = [];
  if (has('tokenizer.json')) out.push({ file: path.join(folder, 'tokenizer.json'), load: loadHfTokenizer });
  if (has('vocab.json') && has('merges.txt')) out.push({ file: path.join(folder, 'vocab.json'), load: loadHfTokenizer });
  if (has('tokenizer.pkl')) out.push({ file: path.join(folder, 'tokenizer.pkl'), load: loadTiktokenPickle });
  const models = names.filter((n) => n.endsWith('.model') && (exclude === undefined || path.resolve(folder, n) !== path.resolve(exclude)));
  models.sort((a, b) => Number(b === 'tokenizer.model') - Number(a === 'tokenizer.model') || a.localeCompare(b));
  for (const n of models) out.push({ file: path.join(folder, n), load: loadSentencePiece });
  return out.filter((c) => !isFolder(c.file));
}

/** An explicitly named tokenizer file, by its name. */
function candidateForFile(file: string): Candidate {
  const base = path.basename(file);
  if (!fs.existsSync(file)) throw new BadInputError(`${file}: no such tokenizer file`);
  if (base.endsWith('.json') || base === 'merges.txt') return { file, load: loadHfTokenizer };
  if (base.endsWith('.pkl')) return { file, load: loadTiktokenPickle };
  if (base.endsWith('.model')) return { file, load: loadSentencePiece };
  throw new BadInputError(`${file}: not a tokenizer file this reader knows (tokenizer.json, vocab.json, merges.txt, *.pkl, *.model)`);
}

function isFolder(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
