/**
 * Hugging Face model folders, read from disk only (never any network access):
 *   - a folder as transformers' `save_pretrained` writes it: `config.json` beside `model.safetensors`
 *     or `pytorch_model.bin` (safetensors preferred, as transformers does);
 *   - a hub cache snapshot, `…/models--<org>--<name>/snapshots/<commit>/`, whose files are usually
 *     links into `../../blobs/` (followed like any file);
 *   - the cache entry of a model, `…/models--<org>--<name>/`: the snapshot `refs/main` names, else
 *     its only snapshot.
 * The weights file is read by the ordinary file readers (io/checkpoint.ts `readRaw`); this module
 * only finds it and says which folder and config it came from. What the tensors mean is the
 * family's business (models/gpt2.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BadInputError } from '../errors';
import type { RawCheckpoint, RawConfig } from './checkpoint';

/** Weights files of a transformers folder, in the order transformers prefers them. */
export const HF_WEIGHT_FILES = ['model.safetensors', 'pytorch_model.bin'] as const;

/** What `RawCheckpoint.extra.hf` holds for a checkpoint read from a folder. */
export interface HfFolderExtra {
  /** The folder given. */
  folder: string;
  /** The folder the files were read from (the snapshot of a cache entry, else the folder given). */
  snapshot: string;
  /** config.json, or null when the folder has none. */
  config: string | null;
}

/** The weights file and config of a model folder, snapshot or cache entry. */
export interface HfFolder extends HfFolderExtra {
  weights: string;
}

export function resolveHfFolder(dir: string): HfFolder {
  const snapshot = snapshotOf(dir);
  const config = path.join(snapshot, 'config.json');
  return { folder: dir, snapshot, weights: weightsFileOf(snapshot, dir), config: fileExists(config, dir) ? config : null };
}

/** Reads a folder through `readFile` (the single-file reader); `name` becomes `<folder>/<weights file>`. */
export function readHfFolder(dir: string, readFile: (file: string) => RawCheckpoint): RawCheckpoint {
  const f = resolveHfFolder(dir);
  const raw = readFile(f.weights);
  const hf: HfFolderExtra = { folder: f.folder, snapshot: f.snapshot, config: f.config };
  return { ...raw, path: dir, name: path.relative(path.dirname(path.resolve(dir)), path.resolve(f.weights)), extra: { ...raw.extra, hf } };
}

/** The folder facts of a raw checkpoint read by `readHfFolder`, else undefined. */
export function hfFolderOf(raw: RawCheckpoint): HfFolderExtra | undefined {
  const hf = raw.extra.hf as HfFolderExtra | undefined;
  return hf && typeof hf === 'object' && typeof hf.folder === 'string' ? hf : undefined;
}

/**
 * A folder without config.json whose weights carry no config of their own cannot say its
 * number of heads (nothing in the tensors does): refuse it unless --config says something.
 */
export function requireFolderConfig(raw: RawCheckpoint, given: RawConfig): void {
  const hf = hfFolderOf(raw);
  if (!hf || hf.config || Object.keys(raw.fileConfig).length || Object.keys(given).length) return;
  throw new BadInputError(`${hf.folder}: no config.json in this folder (the weights do not tell the number of heads): add the model's config.json or pass --config with n_head`);
}

/** A cache entry (`models--…` with `snapshots/`) resolves to one snapshot; any other folder is itself. */
function snapshotOf(dir: string): string {
  const snapshots = path.join(dir, 'snapshots');
  if (!isFolder(snapshots)) return dir;
  const ref = path.join(dir, 'refs', 'main');
  if (fs.existsSync(ref)) {
    const commit = fs.readFileSync(ref, 'utf8').trim();
    if (!/^[A-Za-z0-9_-]+$/.test(commit)) throw new BadInputError(`${ref}: expected a commit hash, found ${JSON.stringify(commit.slice(0, 60))} (the cache is damaged: point to a snapshot folder instead)`);
    const snapshot = path.join(snapshots, commit);
    if (!isFolder(snapshot)) throw new BadInputError(`${dir}: refs/main names snapshot ${commit}, which is not in snapshots/ (an incomplete download? point to a snapshot folder instead)`);
    return snapshot;
  }
  const found = fs.readdirSync(snapshots).filter((n) => isFolder(path.join(snapshots, n))).sort();
  if (found.length === 1) return path.join(snapshots, found[0]);
  if (!found.length) throw new BadInputError(`${dir}: a hub cache entry with no snapshots (the model was never fully downloaded)`);
  throw new BadInputError(`${dir}: a hub cache entry with ${found.length} snapshots (${found.join(', ')}) and no refs/main: point to one of them, ${path.join(snapshots, '<commit>')}`);
}

/** Checkpoints a run folder holds, in the order they are preferred. */
const RUN_CHECKPOINTS = ['best.safetensors', 'last.safetensors', 'ckpt.pt'];

function weightsFileOf(snapshot: string, given: string): string {
  for (const name of HF_WEIGHT_FILES) {
    const file = path.join(snapshot, name);
    if (fileExists(file, given)) return file;
  }
  // a training run's folder: Head Lens's (best, then last checkpoint) or nanoGPT's out_dir
  for (const name of RUN_CHECKPOINTS) {
    const file = path.join(snapshot, name);
    if (fileExists(file, given)) return file;
  }
  const entries = fs.readdirSync(snapshot).sort();
  const index = entries.find((n) => /^(model\.safetensors|pytorch_model\.bin)\.index\.json$/.test(n));
  if (index) throw new BadInputError(`${given}: the weights are sharded (${index}), which is not supported: save the model as one file (save_pretrained(…, max_shard_size="100GB"))`);
  const shown = entries.slice(0, 6).join(', ') + (entries.length > 6 ? ', …' : '');
  throw new BadInputError(`${given}: no ${HF_WEIGHT_FILES.join(' or ')} in this folder (it holds ${shown || 'nothing'}): point to a Hugging Face model folder, a training run's folder or a weights file`);
}

function isFolder(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** A regular file (links followed); a link whose target is gone is an incomplete download, said so. */
function fileExists(file: string, given: string): boolean {
  let link: fs.Stats;
  try {
    link = fs.lstatSync(file);
  } catch {
    return false;
  }
  try {
    return fs.statSync(file).isFile();
  } catch {
    if (link.isSymbolicLink()) throw new BadInputError(`${given}: ${path.basename(file)} links to ${fs.readlinkSync(file)}, which is missing (an incomplete download: fetch the model again)`);
    return false;
  }
}
