import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { redactUrl } from '../../src/redact.js';

describe('redactUrl', () => {
  const rows: [string, string][] = [
    ['http://user:pass@proxy.example:3128', 'http://***@proxy.example:3128/'],
    ['user:pass@proxy.example:3128', '***@proxy.example:3128'],
    ['http://proxy.example:3128', 'http://proxy.example:3128'],
    ['https://m.example/_matrix/x?user_id=@alice:example.org', 'https://m.example/_matrix/x?user_id=@alice:example.org'],
    ['https://u:pw@m.example/x?user_id=@alice:example.org', 'https://***@m.example/x?user_id=@alice:example.org'],
    ['http://user:pa/ss@proxy.example', 'http://***@proxy.example'],
    ['http://user:pa#ss@proxy.example', 'http://***@proxy.example'],
    ['http://user:p@ss@proxy.example', 'http://***@proxy.example/'],
    ['socks5://user:secret@p:1080', 'socks5://***@p:1080'],
    ['http://@proxy.example', 'http://***@proxy.example'],
  ];
  for (const [input, expected] of rows) {
    it(`${input} → ${expected}`, () => {
      const out = redactUrl(input);
      assert.equal(out, expected);
      assert.doesNotMatch(out, /pass|secret|pa\/ss|pa#ss|p@ss/);
    });
  }
});
