// Entry points of the `lomo` subcommands. Each returns the process exit status; errors a user
// can cause arrive as lomo::Error and are printed by main().
#pragma once

namespace lomo::cli {

int cmd_train(int argc, char** argv);
int cmd_score(int argc, char** argv);
int cmd_init(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_memory(int argc, char** argv);
int cmd_generate(int argc, char** argv);

}  // namespace lomo::cli
