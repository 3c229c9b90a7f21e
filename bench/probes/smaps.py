import sys, re, collections
rss = collections.Counter(); cnt = collections.Counter()
key = None
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    m = re.match(r'([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)', line)
    if m:
        sz = (int(m.group(2), 16) - int(m.group(1), 16)) // 1024
        key = f"{sz}K {m.group(3)} {m.group(4)[-30:]}"
        cnt[key] += 1
    elif line.startswith('Rss:'):
        rss[key] += int(line.split()[1])
for k, v in sorted(rss.items(), key=lambda x: -x[1])[:6]:
    print(f"  {k:50s} maps={cnt[k]} rss={v} KiB")
