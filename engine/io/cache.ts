/**
 * The per-user cache folder: $HEADLENS_CACHE, else the OS's own (XDG_CACHE_HOME or ~/.cache on
 * Linux, ~/Library/Caches on macOS, LOCALAPPDATA on Windows) under `headlens/`, else tmp. Token
 * caches and runtime probe results live here; losing it only costs time.
 */
import * as os from 'node:os';
import * as path from 'node:path';

/** `<root>/<sub>` of the cache. */
export function cacheFolder(sub: string, env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, home = os.homedir()): string {
  if (env.HEADLENS_CACHE) return path.join(env.HEADLENS_CACHE, sub);
  const base =
    platform === 'win32' ? env.LOCALAPPDATA :
    platform === 'darwin' ? home && path.join(home, 'Library', 'Caches') :
    env.XDG_CACHE_HOME || (home && path.join(home, '.cache'));
  return base ? path.join(base, 'headlens', sub) : path.join(os.tmpdir(), `headlens-${sub}-cache`);
}
