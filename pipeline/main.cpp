#include "pipeline/cli.h"

int main(int argc, char** argv) { return studio::run_cli(argc, argv); }
