#!/usr/bin/python3
"""Regenerate cases.txt: GVariant text-format expectations taken from the real GLib.

Run with Debian's python3 (needs python3-gi, gir1.2-glib-2.0 and, for the CLI
cross-check, the real `ostree` binary):

    /usr/bin/python3 ostree-core/tests/gvariant-text/generate.py > ostree-core/tests/gvariant-text/cases.txt

Record kinds (tab separated; in every field `\\` `\t` `\n` are backslash escaped):

    print      TYPE  HEX(normal form)  g_variant_print(v, TRUE)  g_variant_print(v, FALSE)
    parse-ok   INPUT  TYPE-ARG-or-empty  RESULT-TYPE  HEX
    parse-err  INPUT  TYPE-ARG-or-empty  GError message

`--unicode-table` prints the Rust table of characters g_unichar_isprint() rejects.
"""

import ctypes
import math
import os
import random
import re
import struct
import subprocess
import sys
import tempfile

from gi.repository import GLib

rng = random.Random(20240601)


def esc(s):
    return s.replace('\\', '\\\\').replace('\t', '\\t').replace('\n', '\\n')


def normal(v):
    return v.get_normal_form()


def hexof(v):
    return bytes(normal(v).get_data_as_bytes().get_data()).hex()


seen_print = set()


def emit_print(v):
    v = normal(v)
    key = (v.get_type_string(), hexof(v))
    if key in seen_print:
        return
    seen_print.add(key)
    print('\t'.join(['print', v.get_type_string(), hexof(v), esc(v.print_(True)), esc(v.print_(False))]))


seen_parse = set()


def emit_parse(text, ty=None):
    if '\0' in text or (text, ty) in seen_parse:
        return
    # GLib's "\u" escape path emits a g_critical (and no GError) for surrogates
    # and out-of-range values; keep such inputs out of the oracle.
    if re.search(r'\\[uU]', text):
        for m in re.finditer(r'\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})', text):
            val = int(m.group(1) or m.group(2), 16)
            if 0xd800 <= val <= 0xdfff or val > 0x10ffff:
                return
    seen_parse.add((text, ty))
    try:
        v = GLib.Variant.parse(GLib.VariantType(ty) if ty else None, text, None, None)
    except GLib.Error as e:
        msg = e.message
        m = re.match(r'^(-?\d+)', msg)
        if m and not (0 <= int(m.group(1)) <= len(text.encode())):
            return  # GLib reports an uninitialised offset here (see text.rs)
        print('\t'.join(['parse-err', esc(text), ty or '', esc(msg)]))
        return
    print('\t'.join(['parse-ok', esc(text), ty or '', v.get_type_string(), hexof(v)]))


# ---------------------------------------------------------------- values

INTS = {
    'y': (0, 255), 'n': (-32768, 32767), 'q': (0, 65535), 'i': (-2**31, 2**31 - 1),
    'u': (0, 2**32 - 1), 'x': (-2**63, 2**63 - 1), 't': (0, 2**64 - 1), 'h': (-2**31, 2**31 - 1),
}

SPECIAL_CHARS = (
    ["'", '"', '\\', '\n', '\t', '\r', '\a', '\b', '\f', '\v', '\x01', '\x1b', '\x7f', ' ',
     '\x80', '\x85', '\x9f', '\xa0', '\xad', 'é', 'ß', '\u0378', '\u0600', '\u200b', '\u200e',
     '\u2028', '\u2029', '\u3000', '\ufeff', '\ufff9', '\ufffd', '\uffff', '\ue000', '\uf8ff',
     '中', '\u0301', '\U0001f600', '\U000e0001', '\U000e0080', '\U0001fffe', '\U000f0000',
     '\U0010fffd', '\U00010000', '\U0002a6e0', '%', '@', '<', '>', '{', '}'])


def rand_str():
    n = rng.choice([0, 1, 2, 3, 5, 8, 12])
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            out.append(chr(rng.randint(0x20, 0x7e)))
        elif r < 0.8:
            out.append(rng.choice(SPECIAL_CHARS))
        else:
            c = rng.randint(0, 0x10ffff)
            if 0xd800 <= c <= 0xdfff or c == 0:
                c = 0x41
            out.append(chr(c))
    return ''.join(out)


def rand_bytes():
    r = rng.random()
    if r < 0.35:
        s = rand_str().encode()
        return s.replace(b'\0', b'') + b'\0'
    if r < 0.55:
        return bytes(rng.randint(1, 255) for _ in range(rng.randint(0, 6))) + b'\0'
    if r < 0.75:
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 6)))
    return rng.choice([b'', b'\0', b'\0\0', b'a\0b\0', b'hello', b'user.test\0', b"it's\0",
                       b'"q"\0', b'\\\0', b'\x7f\x80\xff\0', b'\x07\0'])


def rand_double():
    r = rng.random()
    if r < 0.2:
        return rng.choice([0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 3.0, 1e16, 1e17, 1e-4, 1e-5, 123456789.0,
                           1e300, 1e-300, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                           float('inf'), float('-inf'), float('nan'), -float('nan'), 100.0,
                           1125899906842624.25, 1125899906842624.75, 12345678901234567890.0,
                           0.30000000000000004, 2**53, 2**53 + 2, 1.5e-7, 9.999999999999999e22])
    if r < 0.5:
        while True:
            d = struct.unpack('<d', bytes(rng.randint(0, 255) for _ in range(8)))[0]
            if not math.isnan(d):
                return d
    if r < 0.7:
        return float(rng.randint(-10**6, 10**6))
    return rng.uniform(-1000, 1000) * 10 ** rng.randint(-30, 30)


def rand_objpath():
    n = rng.randint(0, 3)
    parts = [''.join(rng.choice('abcXYZ019_') for _ in range(rng.randint(1, 4))) for _ in range(n)]
    return '/' + '/'.join(parts)


BASIC = 'bynqiuxthdsog'


def rand_type(depth=0):
    r = rng.random()
    if depth > 3 or r < 0.45:
        return rng.choice(BASIC + 'v' if depth < 4 else BASIC)
    r = rng.random()
    if r < 0.3:
        return 'a' + rand_type(depth + 1)
    if r < 0.45:
        return 'm' + rand_type(depth + 1)
    if r < 0.7:
        return '(' + ''.join(rand_type(depth + 1) for _ in range(rng.choice([0, 1, 1, 2, 3]))) + ')'
    if r < 0.9:
        return 'a{' + rng.choice(BASIC) + rand_type(depth + 1) + '}'
    return 'ay'


def split_type(t):
    """Split a tuple body into its member type strings."""
    out, i = [], 0
    while i < len(t):
        j = end_of_type(t, i)
        out.append(t[i:j])
        i = j
    return out


def end_of_type(t, i):
    while t[i] in 'am':
        i += 1
    if t[i] in '({':
        depth = 0
        while True:
            if t[i] in '({':
                depth += 1
            elif t[i] in ')}':
                depth -= 1
            i += 1
            if depth == 0:
                return i
    return i + 1


def rand_value(t, depth=0):
    c = t[0]
    if c == 'b':
        return rng.choice([True, False])
    if c in INTS:
        lo, hi = INTS[c]
        r = rng.random()
        if r < 0.3:
            return rng.choice([lo, hi, 0, 1, -1 if lo < 0 else 2, 42])
        if r < 0.6:
            return rng.randint(max(lo, -300), min(hi, 300))
        return rng.randint(lo, hi)
    if c == 'd':
        return rand_double()
    if c == 's':
        return rand_str()
    if c == 'o':
        return rand_objpath()
    if c == 'g':
        return rng.choice(['', 'a{sv}', 's', '(ii)', 'ay', 'aa{sv}v'])
    if c == 'v':
        it = rand_type(depth + 2)
        return GLib.Variant(it, rand_value(it, depth + 2))
    if c == 'm':
        if rng.random() < 0.4:
            return None
        return rand_value(t[1:], depth + 1)
    if t == 'ay':
        return rand_bytes()
    if c == 'a' and t[1] == '{':
        kt, vt = split_type(t[2:-1])
        n = rng.choice([0, 1, 2, 3])
        return {rand_value(kt, depth + 1): rand_value(vt, depth + 1) for _ in range(n)}
    if c == 'a':
        n = rng.choice([0, 1, 2, 3, 4])
        return [rand_value(t[1:], depth + 1) for _ in range(n)]
    if c == '(':
        return tuple(rand_value(m, depth + 1) for m in split_type(t[1:-1]))
    raise ValueError(t)


def handcrafted_values():
    V = GLib.Variant
    vals = [
        V('b', True), V('b', False), V('y', 0), V('y', 255), V('y', 0x68), V('n', -32768), V('n', 5),
        V('q', 65535), V('i', -2**31), V('i', 42), V('u', 2**32 - 1), V('x', -2**63), V('x', 7),
        V('t', 2**64 - 1), V('t', 1577836800), V('h', 3), V('h', -1),
        V('s', ''), V('s', '3.0'), V('s', "it's"), V('s', 'say "hi"'), V('s', 'both \' and "'),
        V('s', 'tab\there\nnl'), V('s', 'back\\slash'), V('s', '\x00'[:0] + '\x07\x08\x0c\x0d\x0b'),
        V('o', '/'), V('o', '/org/gnome/x_1'), V('g', ''), V('g', 'a{sv}'),
        V('ay', b''), V('ay', b'\0'), V('ay', b'hello'), V('ay', b'hello\0'), V('ay', b"it's\0"),
        V('ay', b'a\0b\0'), V('ay', b'\n\t\\"\x01\x7f\xff\0'), V('ay', b'user.test\0'),
        V('aay', [b'a\0', b'']), V('aay', []),
        V('a(ayay)', []), V('a(ayay)', [(b'user.test\0', b'hello')]),
        V('a(ayay)', [(b'security.selinux\0', b'system_u:object_r:usr_t:s0\0')]),
        V('as', []), V('as', ['a']), V('as', ['a', 'b']), V('ai', [1, 2, 3]), V('ax', [1, 2]),
        V('at', [5]), V('ab', [True, False]), V('ad', [1.0, 2.5]), V('aai', [[], [1]]),
        V('aas', [[], ['x']]), V('a{sv}', {}), V('a{sv}', {'version': V('s', '3.0')}),
        V('a{ss}', {'a': 'b', 'c': 'd'}), V('a{is}', {1: 'x'}), V('a{sv}', {'a': V('i', 1), 'b': V('t', 2)}),
        V('a{sa{sv}}', {'k': {'x': V('b', True)}}),
        V('{sv}', ('k', V('u', 5))), V('{ii}', (1, 2)), V('a{ya{nq}}', {1: {2: 3}}),
        V('()', ()), V('(i)', (1,)), V('(s)', ('x',)), V('(ii)', (1, 2)), V('(yt)', (1, 2)),
        V('((),)'.replace(',', ''), ((),)), V('(a{sv}as)', ({}, [])),
        V('v', V('i', 1)), V('v', V('v', V('s', 'x'))), V('v', V('as', [])), V('av', [V('y', 1), V('d', 1.0)]),
        V('mi', None), V('mi', 5), V('ms', 'x'), V('mmi', None), V('mmi', V('mi', None).unpack()),
        V('ma{sv}', {}), V('mas', []), V('mv', V('i', 1)), V('m(ii)', (1, 2)), V('may', b'ab\0'),
        V('ams', ['a', None]), V('ams', [None, 'a']), V('ami', [None, 5]), V('amai', [[], None]),
        V('m()', ()),
    ]
    # just nothing / just just nothing
    vals.append(GLib.Variant.new_maybe(GLib.VariantType('mi'), GLib.Variant.new_maybe(GLib.VariantType('i'), None)))
    vals.append(GLib.Variant.new_maybe(GLib.VariantType('mmi'), GLib.Variant.new_maybe(
        GLib.VariantType('mi'), GLib.Variant.new_maybe(GLib.VariantType('i'), None))))
    vals.append(GLib.Variant.new_maybe(GLib.VariantType('mmi'), GLib.Variant.new_maybe(
        GLib.VariantType('mi'), GLib.Variant.new_maybe(None, V('i', 7)))))
    vals.append(GLib.Variant.new_maybe(None, GLib.Variant.new_maybe(None, V('s', 'deep'))))
    vals.append(V('amv', [None, V('i', 1)]))
    for d in [0.0, -0.0, 1.0, 3.0, -2.0, 0.1, 1e16, 1e17, 1e21, 1e22, 1e-4, 1e-5, 123.456, 5e-324,
              float('inf'), float('-inf'), float('nan'), -float('nan'), 1125899906842624.25,
              1125899906842624.75, 2.0**70, 1/3]:
        vals.append(V('d', d))
    return vals


# ---------------------------------------------------------------- parse inputs

PARSE_INPUTS = r"""
42
-42
+42
0
-0
0x10
0X1f
-0x10
010
08
0x
0xg
2147483647
2147483648
-2147483648
-2147483649
18446744073709551615
18446744073709551616
99999999999999999999999
99999999999999999999x
--5
-+5
+-5
1E5
1e5
1.5
-1.5
.5
5.
1.5e3
1.5e
1.5e+
1e400
-1e400
1e-400
1e-310
inf
-inf
nan
-nan
infinity
-infinity
0x1e
-0x1e
'str'
"str"
'it''s'
"it's"
'a\'b'
'a\"b'
'\a\b\f\n\r\t\v'
'\q\\\/'
'\u00e9'
'\u00E9x'
'\U0001F600'
'\u0000'
'\u12'
'\u12g4'
'\U0000004'
'\u+123'
'abc
'abc\
"
''
b'bytes'
b"by'tes"
b'\x41'
b'\101\1012'
b'\400'
b'a\0b'
b'\n\t'
b''
b'abc
true
false
True
TRUE
nothing
just 5
just nothing
just just 5
@mi nothing
@ms nothing
@mmi just nothing
@mi just 5
@ms 'a'
@mmi 5
just
null
n
j
nope
[]
@as []
['a','b']
['a', "b"]
[1, 2, 3]
[1, 2.5]
[1, 'a']
[1, 2, 'a']
['a', 1, 2]
[1,]
[,]
[1 2]
[
]
[[]]
[[], [1]]
[[1], ['a']]
[@ay [], b'x']
[byte 0x01]
[byte 0x01, 2, 0x03]
[byte 0x01, 256]
[nothing, just 5]
[nothing]
[just 5, nothing, 6]
[<1>, <'a'>]
[{}, {'a': 1}]
[{'a': 1}, {1: 'a'}]
[@mi 5, 6]
[@s 'a', 'b']
[@s 'a', @o '/']
[(1, 'a'), (2, 'b')]
[(1,), (2, 3)]
()
(1)
(1,)
(1,2)
(1, 2,)
(1, 'x')
((), ())
(,)
(1 2)
<1>
<'a'>
<@as []>
<[]>
<<1>>
<1
<>
{}
@a{sv} {}
{'a': <1>}
{'a': <1>, 'b': <'x'>}
{'a': 1, 'b': 'x'}
{1: 'a', 'b': 'c'}
{1: 2}
{1, 2}
{'a', <1>}
[{1, 2}, {3, 4}]
{<1>: 2}
{[1]: 2}
{@mi 1: 2}
{nothing: 2}
{1: 2, 3}
{1: 2,}
{1}
{1:}
{:1}
{1, 2, 3}
byte 255
byte 256
byte -1
byte -0
byte 0xff
int16 -32768
int16 32768
uint16 65535
uint16 -1
int32 5
uint32 4294967295
uint32 4294967296
int64 -9223372036854775808
int64 9223372036854775808
uint64 18446744073709551615
uint64 -1
uint64 5
handle 3
handle -2147483648
double 1
double 0x10
double 0x1p3
double 0x1.8p1
double 0x
double 0x1p
double 1e
boolean true
boolean 1
string 'x'
string 5
objectpath '/a/b'
objectpath 'a'
objectpath '/a//b'
objectpath '/a/'
signature 'a{sv}'
signature 'a{vs}'
signature 'm'
signature ''
int32 1.5
int32
float 1.0
unknownkeyword 1
@i 5
@s 5
@ms 5
@d 5
@d 0x
@x -1
@t -1
@y 300
@as ['a']
@as [1]
@a{sv} {'a': <1>}
@a{ss} {'a': 'b'}
@{ss} {'a', 'b'}
@v <1>
@v 1
@() ()
@(i) (1,)
@(ii) (1,)
@(i) (1, 2)
@(())
@(()) ((),)
@o 'a'
@o '/'
@g 'ii'
@g 'z'
@r ()
@* 1
@? 1
@a{?*} {}
@a{vs} {}
@z 1
@ 1
@i
@ai[1]
@ai [1]
@a(ayay) []
@a(ayay) [(b'user.test', [byte 0x68, 0x65, 0x6c, 0x6c, 0x6f])]
{ @a(ayay) [] }
1 2
1 ,
  1  
\t1\n
%i
%
#
$
x
Tr
é
'é'
"\u2028"
[1, 'a',
[1, 2, 3
(1, 2
{'a': 1
<1, 2>
['a', @o '/', 'b']
[@o '/', 'a']
{'a': @o '/', 'b': '/c'}
(nothing,)
(@mi nothing,)
[[1, 2], [3.5]]
[@ai [], [1]]
[[], @ai []]
[just [], [1]]
[just [1], nothing]
[nothing, nothing]
[just nothing, nothing, just just 1]
[(nothing, 1), (just 'a', 2)]
[(nothing, 1), (nothing, 2)]
[{nothing: 1}]
[{'a': nothing}, {'b': just 1}]
[{'a': nothing}, {'b': 1}]
[@(mi) (nothing,), (5,)]
[<1>, 2]
[true, 1]
[1.0, inf, nan, -inf]
[0x10, 1.5]
[-0x10, 1.5]
[1e3, 5]
[b'a', [byte 1]]
[b'a', ['b']]
['a', b'a']
@d 0x1p-1074
@d 0x1.8p-1074
@d 0x3p-1075
@d 0x1p-1075
@d 0x1p-1076
@d 0x1p-1022
@d 0x1.fffffffffffffp-1023
@d 0x1.fffffffffffff8p-1023
@d 2.2250738585072011e-308
@d 2.2250738585072014e-308
@d 1e-320
@d 0x1p1023
@d 0x1p1024
@d 0x1.fffffffffffff8p1023
@d 0x1.fffffffffffff7p1023
@d 1.7976931348623158e308
@d 1.7976931348623159e308
@d 0x123456789abcdef0123p0
@d 0x.8
@d 0x1.
@d -0x0p0
@d 0x10000000000000001
@d 0x10000000000000008
@d 0x1000000000000000800001
@d nan(123)
@d 1e+
@d 1.e5
@d +.5e-3
""".strip('\n').split('\n')

TYPED_INPUTS = [
    ('5', 'i'), ('5', 't'), ('5', 'y'), ('5', 'd'), ('5', 's'), ('5', 'mi'), ('5', 'mmi'), ('5', 'v'),
    ('nothing', 'mi'), ('nothing', 'i'), ('[]', 'as'), ('[]', 'ay'), ('[]', 'a{sv}'), ('[]', 's'),
    ('{}', 'a{sv}'), ('{}', 'as'), ("{'a': <1>}", 'a{sv}'), ("{'a', <1>}", '{sv}'), ("{'a', <1>}", 'a{sv}'),
    ("'x'", 'o'), ("'/x'", 'o'), ("'i'", 'g'), ("b'x'", 'ay'), ("b'x'", 'as'), ("'x'", 'ay'),
    ('(1, 2)', '(ii)'), ('(1, 2)', '(i)'), ('(1,)', '(ii)'), ('(1, 2)', '(yt)'), ('(1, 2)', 'm(ii)'),
    ('<1>', 'v'), ('<1>', 'mv'), ('<1>', 'i'), ('true', 'b'), ('true', 'mb'), ('true', 'i'),
    ('[1, 2]', 'ay'), ('[1, 2]', 'ad'), ('[1, 2]', 'amy'), ('@i 5', 'i'), ('@i 5', 'u'),
    ('@mi 5', 'mi'), ('1.5', 'd'), ('1.5', 'i'), ('[just 1, nothing]', 'ami'),
    ('{1: 2}', 'a{yy}'), ('{1: 300}', 'a{yy}'), ("['a', 'b']", 'aa'.replace('aa', 'as')),
]


def mutate(text):
    alphabet = ['[', ']', '(', ')', '{', '}', '<', '>', ',', ':', ' ', "'", '"', '\\', 'b', '@', '1',
                '-', '.', 'e', 'x', '0', 'nothing', 'just ', 'true', '@as', '@i ', 'int32 ', 'byte ',
                '%', 'ay', 'a{sv}', 'm', 'inf', 'nan', '\n', 'é', '\\n', '\\101']
    s = list(text)
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        pos = rng.randint(0, len(s))
        if r < 0.35 and s:
            del s[min(pos, len(s) - 1)]
        elif r < 0.7:
            s.insert(pos, rng.choice(alphabet))
        elif s:
            s[min(pos, len(s) - 1)] = rng.choice(alphabet)
    return ''.join(s)


# ---------------------------------------------------------------- ostree CLI cross-check

def ostree_cross_check():
    """Prove that the strings the real ostree CLI prints are GLib's g_variant_print output."""
    with tempfile.TemporaryDirectory() as d:
        tree = os.path.join(d, 'tree')
        os.makedirs(os.path.join(tree, 'sub'))
        with open(os.path.join(tree, 'a'), 'w') as f:
            f.write('hello\n')
        os.setxattr(os.path.join(tree, 'a'), 'user.test', b'hello')
        repo = os.path.join(d, 'repo')
        subprocess.run(['ostree', 'init', '--repo=' + repo, '--mode=archive'], check=True)
        meta = ['--add-metadata-string=version=3.0', '--add-metadata=num=42',
                "--add-metadata=arr=['a','b']", '--add-metadata=nothing=@ms nothing',
                '--add-metadata=d=1.5', "--add-metadata=b=b'bytes'", '--add-metadata=t=uint64 5',
                "--add-metadata=s=\"it's\"", "--add-metadata=m={'k': <(1, 'x')>}"]
        rev = subprocess.run(['ostree', 'commit', '--repo=' + repo, '-b', 'main', '-s', 'subj',
                              '--timestamp=2020-01-01T00:00:00Z', '--tree=dir=' + tree] + meta,
                             check=True, capture_output=True, text=True).stdout.strip()
        raw = subprocess.run(['ostree', 'show', '--repo=' + repo, '--raw', rev], check=True,
                             capture_output=True, text=True).stdout.split('\n')[1]
        with open(os.path.join(repo, 'objects', rev[:2], rev[2:] + '.commit'), 'rb') as f:
            data = f.read()
        ty = GLib.VariantType('(a{sv}aya(say)sstayay)')
        commit = GLib.Variant.new_from_bytes(ty, GLib.Bytes.new(data), False)
        # `ostree show --raw` byteswaps the commit on little-endian hosts before printing
        assert commit.byteswap().print_(True) == raw, (commit.byteswap().print_(True), raw)
        emit_print(commit)
        emit_print(commit.byteswap())
        for key in ['version', 'num', 'arr', 'nothing', 'd', 'b', 't', 's', 'm']:
            out = subprocess.run(['ostree', 'show', '--repo=' + repo, '--print-metadata-key=' + key,
                                  rev], check=True, capture_output=True, text=True).stdout
            val = commit.get_child_value(0).lookup_value(key, None)
            # ot_dump_variant() byteswaps here too (unless --no-byteswap)
            assert val.byteswap().print_(True) + '\n' == out, (val.byteswap().print_(True), out)
            emit_print(val)
            emit_print(val.byteswap())
        ls = subprocess.run(['ostree', 'ls', '--repo=' + repo, '-X', '-R', rev], check=True,
                            capture_output=True, text=True).stdout
        for t, xattrs in [('a(ayay)', []), ('a(ayay)', [(b'user.test\0', b'hello')])]:
            v = GLib.Variant(t, xattrs)
            assert '{ ' + v.print_(True) + ' }' in ls, (v.print_(True), ls)
            emit_print(v)


def unicode_table():
    ranges, start = [], None
    for c in range(0x110001):
        if c == 0x110000:
            np = False
        elif 0xd800 <= c <= 0xdfff:
            np = True  # never in a Rust string; merged for a shorter table
        else:
            np = not GLib.unichar_isprint(chr(c))
        if np and start is None:
            start = c
        if not np and start is not None:
            ranges.append((start, c - 1))
            start = None
    print('const NON_PRINTABLE: &[(u32, u32)] = &[')
    for i in range(0, len(ranges), 5):
        print('    ' + ' '.join('(0x%x, 0x%x),' % r for r in ranges[i:i + 5]))
    print('];')


def main():
    if sys.argv[1:] == ['--unicode-table']:
        unicode_table()
        return
    lib = ctypes.CDLL('libglib-2.0.so.0')
    version = [ctypes.c_uint.in_dll(lib, 'glib_%s_version' % n).value for n in ('major', 'minor', 'micro')]
    print('# Generated by generate.py from GLib %d.%d.%d; do not edit.' % tuple(version))
    ostree_cross_check()
    for v in handcrafted_values():
        emit_print(v)
    values = []
    for _ in range(1500):
        t = rand_type()
        v = GLib.Variant(t, rand_value(t))
        values.append(v)
        emit_print(v)
    for text in PARSE_INPUTS:
        emit_parse(text)
    for text, ty in TYPED_INPUTS:
        emit_parse(text, ty)
    # printed forms parse back (annotated) or show GLib's inference errors (plain)
    for v in values[:600]:
        emit_parse(v.print_(True))
        emit_parse(v.print_(False))
    # mutated inputs: GLib's verdict on near-valid text, errors included
    corpus = PARSE_INPUTS + [v.print_(True) for v in values[:300]]
    for _ in range(3000):
        emit_parse(mutate(rng.choice(corpus)))


main()
