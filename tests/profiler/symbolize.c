/* symbolize.c — code address to function name through the trace's modules and
 * the ELF symbol tables (libelf), as symbolize.h describes. */
#include "symbolize.h"

#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The module and its executable segment that map pc. */
static const Tierpool__Trace__Module *module_of(const struct tl_trace *t, uint64_t pc) {
  for (size_t m = 0; m < t->n_modules; m++) {
    const Tierpool__Trace__Module *mod = t->modules[m];
    for (size_t s = 0; s < mod->n_segments; s++) {
      const Tierpool__Trace__Module__Segment *seg = mod->segments[s];
      uint64_t lo = mod->load_bias + seg->vaddr;
      if (seg->executable && pc >= lo && pc < lo + seg->memsz) return mod;
    }
  }
  return NULL;
}

/* Whether the file's GNU build-id note is the recorded one (no note recorded: yes). */
static int build_id_matches(Elf *elf, const ProtobufCBinaryData *want) {
  if (!want->len) return 1;
  for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn)) != NULL;) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE) continue;
    Elf_Data *data = elf_getdata(scn, NULL);
    GElf_Nhdr nh;
    size_t off = 0, name_off, desc_off;
    while (data && (off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && memcmp((char *)data->d_buf + name_off, "GNU", 4) == 0)
        return nh.n_descsz == want->len && memcmp((char *)data->d_buf + desc_off, want->data, want->len) == 0;
    }
  }
  return 0;
}

/* The function symbol of table type (SHT_SYMTAB, SHT_DYNSYM) holding vaddr. */
static int find_function(Elf *elf, Elf64_Word type, uint64_t vaddr, char *name, size_t cap) {
  for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn)) != NULL;) {
    GElf_Shdr sh;
    if (!gelf_getshdr(scn, &sh) || sh.sh_type != type || !sh.sh_entsize) continue;
    Elf_Data *data = elf_getdata(scn, NULL);
    for (size_t i = 0; data && i < sh.sh_size / sh.sh_entsize; i++) {
      GElf_Sym sym;
      if (!gelf_getsym(data, (int)i, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC) continue;
      if (vaddr < sym.st_value || vaddr >= sym.st_value + sym.st_size) continue;
      const char *s = elf_strptr(elf, sh.sh_link, sym.st_name);
      snprintf(name, cap, "%s", s ? s : "?");
      return 1;
    }
  }
  return 0;
}

struct symbol symbolize(const struct tl_trace *t, uint64_t pc) {
  struct symbol out = {0};
  const Tierpool__Trace__Module *mod = module_of(t, pc);
  if (!mod) return out;
  out.module = mod->path;
  elf_version(EV_CURRENT);
  int fd = open(mod->path, O_RDONLY | O_CLOEXEC);
  Elf *elf = fd >= 0 ? elf_begin(fd, ELF_C_READ, NULL) : NULL;
  if (elf) {
    out.build_id_ok = build_id_matches(elf, &mod->build_id);
    uint64_t vaddr = pc - mod->load_bias;
    if (!find_function(elf, SHT_SYMTAB, vaddr, out.name, sizeof out.name))
      find_function(elf, SHT_DYNSYM, vaddr, out.name, sizeof out.name);
    elf_end(elf);
  }
  if (fd >= 0) close(fd);
  return out;
}
