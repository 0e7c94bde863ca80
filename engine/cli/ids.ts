/** Token-id inputs of the CLI (`--ids IDS.json`). */
import * as fs from 'node:fs';
import { BadInputError } from '../errors';

/** The parsed contents of a JSON input file; a missing file or bad JSON is one line naming the file. */
export function readJsonInput(file: string): unknown {
  if (!fs.existsSync(file)) throw new BadInputError(`no such file: ${file}`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BadInputError(`${file}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

/** IDS.json: a list of equal-length lists of token ids. */
export function readIds(file: string, vocab: number, block: number): number[][] {
  const ids = readJsonInput(file);
  if (!Array.isArray(ids) || !ids.length || !ids.every((r) => Array.isArray(r))) {
    throw new BadInputError(`${file}: expected a list of lists of token ids, e.g. [[15496, 995]]`);
  }
  const rows = ids as unknown[][];
  const T = rows[0].length;
  if (!T) throw new BadInputError(`${file}: the first sequence is empty`);
  if (T > block) throw new BadInputError(`${file}: sequences of ${T} tokens are longer than the model's block size ${block}`);
  rows.forEach((r, i) => {
    if (r.length !== T) throw new BadInputError(`${file}: sequence ${i} has ${r.length} ids but sequence 0 has ${T} (all must be equal)`);
    r.forEach((v, j) => {
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= vocab) {
        throw new BadInputError(`${file}: id ${JSON.stringify(v)} at [${i}][${j}] is not an integer in [0, ${vocab}) (the model's vocabulary)`);
      }
    });
  });
  return rows as number[][];
}
