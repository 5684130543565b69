/**
 * Names a secret may not have: the wrapper's own variables (__cs_*), those the shell, the dynamic
 * loader or countersign itself depend on. Written out here, not imported from src, so that the
 * config's check (test/unit/config.test.ts) and the wrapper's (test/unit/remoteCommand.test.ts)
 * are held to one list that a change in src cannot shorten.
 */
export const RESERVED_SECRET_NAMES: readonly string[] = [
  // The wrapper's own variables.
  '__cs_f',
  '__cs_n',
  '__cs_anything',
  // What the shell and the wrapper depend on.
  'PATH',
  'HOME',
  'USER',
  'SHELL',
  'PWD',
  'IFS',
  'TMPDIR',
  // What changes how a shell or the dynamic loader starts the script.
  'BASH_ENV',
  'ENV',
  'SHELLOPTS',
  'BASHOPTS',
  'PS4',
  'LD_PRELOAD',
  'LD_LIBRARY_PATH',
  // What countersign gives the script.
  'COUNTERSIGN_RUN',
  'COUNTERSIGN_OUTPUT',
];
