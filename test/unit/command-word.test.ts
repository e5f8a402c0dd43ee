import { describe, expect, it } from 'vitest';
import { commandWord } from '../../src/cli/command-word.js';

describe('the command word, read before the CLI is loaded', () => {
  it.each([
    [['backup', 'snap'], 'backup'],
    [['--config', 'backup', 'restore', '--file', 'x'], 'restore'], // a config file named "backup"
    [['--log-level', 'info', '--json', 'serve'], 'serve'],
    [['--config=k.yaml', 'backup', 'j'], 'backup'],
    [['restore', '--file', 'backup'], 'restore'],
    [['--help'], undefined],
    [[], undefined],
  ])('%j → %s', (args, word) => {
    expect(commandWord(args)).toBe(word);
  });
});
