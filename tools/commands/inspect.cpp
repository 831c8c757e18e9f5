// `conceptlab inspect FILE`: summary of any conceptlab file (format, version, shapes, config).
#include <iostream>

#include "core/inspect.h"
#include "tools/command.h"

namespace cl::cli {

Command command_inspect() {
  return {"inspect", "summarise any conceptlab file (format, version, shapes, config)", [](CLI::App& sub) -> Runner {
            struct Opts {
              std::string path;
              bool json = false;
            };
            auto o = std::make_shared<Opts>();
            sub.add_option("file", o->path, "conceptlab HDF5 file")->required();
            sub.add_flag("--json", o->json, "print one JSON object");
            return [o](const Context&) {
              auto s = inspect_file(o->path);
              if (o->json)
                print_json(s);
              else
                std::cout << inspect_text(s);
              return 0;
            };
          }};
}

}  // namespace cl::cli
